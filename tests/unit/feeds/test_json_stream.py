"""JsonStream: an object read in pieces decodes as json.loads decodes it, a list item at a time."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rome.feeds.formats._common import STREAMED, JsonStream, byte_chunks, load_json
from rome.feeds.snapshot import InvalidPayload

SCALARS = (st.none() | st.booleans() | st.integers(-(10**30), 10**30)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=20)


def stream(body: bytes, *, chunk: int, read: int) -> tuple[list, object]:
    reader = JsonStream(byte_chunks(body, chunk), "T", "items", read_bytes=read)
    items = list(reader.items())
    return items, reader.members


def expected(body: bytes) -> tuple[list, object]:
    doc = load_json(body, "T")
    if isinstance(doc, dict) and isinstance(doc.get("items"), list):
        return doc["items"], {**doc, "items": STREAMED}
    return [], doc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=st.dictionaries(st.text(max_size=6), VALUES, max_size=3),
       items=st.lists(VALUES, max_size=6), after=st.dictionaries(st.text(max_size=6), VALUES,
                                                                 max_size=3),
       indent=st.sampled_from([None, 0, 2]), ascii_only=st.booleans(),
       encoding=st.sampled_from(["utf-8", "utf-8", "utf-16", "utf-32-le"]),
       chunk=st.integers(1, 40), read=st.integers(1, 64))
def test_any_object_read_in_any_pieces_is_what_json_loads_reads(before, items, after, indent,
                                                                ascii_only, encoding, chunk,
                                                                read):
    doc = {**{k: v for k, v in before.items() if k != "items"}, "items": items,
           **{k: v for k, v in after.items() if k != "items"}}
    body = json.dumps(doc, indent=indent, ensure_ascii=ascii_only).encode(encoding)
    assert stream(body, chunk=chunk, read=read) == expected(body)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=VALUES, chunk=st.integers(1, 40), read=st.integers(1, 64))
def test_a_top_level_that_is_not_such_an_object_comes_back_whole(value, chunk, read):
    body = json.dumps(value).encode()
    assert stream(body, chunk=chunk, read=read) == expected(body)


def test_every_cut_of_a_document_is_refused_as_json_loads_refuses_it():
    body = json.dumps({"a": [1, 2.5, "x\u00e9\\"], "items": [{"k": [True, None, -3e-7]},
                      "\U0001f600", 12345678901234567890], "z": {"n": False}},
                      ensure_ascii=False).encode()
    for cut in range(len(body)):
        with pytest.raises(InvalidPayload):
            load_json(body[:cut], "T")
        for chunk, read in ((1, 1), (3, 5), (7, 64)):
            with pytest.raises(InvalidPayload, match="not valid JSON|not UTF-8"):
                stream(body[:cut], chunk=chunk, read=read)


@pytest.mark.parametrize("body, reason", [
    (b"{", "not valid JSON"),
    (b"", "not valid JSON"),
    (b'{"items": [1,]}', "not valid JSON"),
    (b'{"items": [1] "x": 2}', "not valid JSON"),
    (b'{"items": [1]} x', "Extra data"),
    (b'{"items": [1], }', "not valid JSON"),
    (b'{"items": [NaN]}', "not a number"),
    (b'{"items": [1], "x": -Infinity}', "not a number"),
    (b'{"items": ["\xff"]}', "not UTF-8"),
    (b"\xff\xfe{", "not UTF-8"),
    (b'{"items": [' + b"9" * 5000 + b"]}", "not valid JSON"),
    (b'{"items": [], "items": []}', "two 'items' members"),
])
@pytest.mark.parametrize("read", [1, 4, 1 << 20])
def test_bad_documents_are_refused_with_a_reason(body, reason, read):
    with pytest.raises(InvalidPayload, match=reason):
        stream(body, chunk=3, read=read)


def test_nesting_json_loads_cannot_take_is_a_recursion_error_as_there():
    body = b'{"items": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}"
    with pytest.raises(RecursionError):
        json.loads(body)
    with pytest.raises(RecursionError):
        stream(body, chunk=4096, read=1 << 16)


def test_items_are_handed_out_one_by_one_not_kept():
    body = json.dumps({"items": [{"n": i, "pad": "x" * 1000} for i in range(2000)]}).encode()
    reader = JsonStream(byte_chunks(body, 4096), "T", "items", read_bytes=8192)
    window = []
    for item in reader.items():
        window.append(len(reader._text))  # what is read ahead, never the whole body
        assert item["pad"] == "x" * 1000
    assert max(window) < 4 * 8192 < len(body)
