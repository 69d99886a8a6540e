import json

import pytest

from rome.normalize import normalize
from rome.sources import emit_tick
from rome.updates import MAX_PAYLOAD_BYTES, InvalidPayload, Update


@pytest.mark.parametrize("source", ["ap", "mc", "sos"])
def test_each_feed_normalizes_to_the_same_canonical_updates(source):
    body, rows = emit_tick(source, 12, seed="x", chance=1.0, units=3, now=1700000000.0)
    updates = normalize(source, body)
    assert len(updates) == rows == 3
    for i, u in enumerate(updates):
        assert u.source == source and u.tick == 12 and u.unit == i
        assert u.id == f"{source}:12:{i}:{u.candidate_id}"
        assert u.emitted_at == 1700000000.0
        assert Update.from_wire(json.loads(json.dumps(u.to_wire()))) == u


def test_ap_party_case_and_reused_candidate_ids_are_mapped():
    row = {"raceID": 1, "raceName": "President of the United States", "candidateID": 2,
           "first": "Hillary", "last": "Clinton", "party": "Dem", "voteCount": 10,
           "source": "AP", "tick": 5, "emittedAt": 1.0}
    [update] = normalize("ap", json.dumps([row]))
    assert update.candidate_id == 102 and update.race_id == 1 and update.votes == 10


def ap_row(**changes):
    row = {"raceID": 1, "candidateID": 1, "party": "GOP", "voteCount": 5, "tick": 3,
           "emittedAt": 1.0}
    row.update(changes)
    return json.dumps([row])


def mc_body(**changes):
    body = {"contest": {"title": "Maricopa County Sheriff"}, "report": {"seq": 4, "generated": 1.0},
            "choices": [{"precinct": 0, "choice": {"name": "ARPAIO, JOE", "party": "REP"},
                         "delta": 7}]}
    body.update(changes)
    return json.dumps(body)


BAD = [
    ("ap", "{not json", "not valid JSON"),
    ("ap", b"\xff\xfe\x00bytes", "not UTF-8"),
    ("ap", "x" * (MAX_PAYLOAD_BYTES + 1), "over"),
    ("ap", "{}", "must be a list"),
    ("ap", "[]", "carries no updates"),
    ("ap", ap_row(voteCount=-5), "negative"),
    ("ap", ap_row(voteCount=10**12), "absurd"),
    ("ap", ap_row(voteCount="many"), "whole number"),
    ("ap", ap_row(voteCount=True), "wrong type"),
    ("ap", ap_row(candidateID=9), "unknown candidate"),
    ("ap", ap_row(raceID=2), "race 2"),
    ("ap", ap_row(party="DEM"), "party"),
    ("ap", ap_row(tick=-1), "tick"),
    ("ap", ap_row(tick=2**63), "tick must be 0"),
    ("ap", ap_row(unit=2**31), "unit must be 0"),
    ("ap", ap_row(emittedAt=1e300), "emitted_at must be 0"),
    ("ap", ap_row(voteCount="²"), "whole number"),
    ("ap", json.dumps([{"raceID": 1}]), "missing 'candidateID'"),
    ("mc", mc_body(contest={"title": "Dog catcher"}), "Dog catcher"),
    ("mc", mc_body(report="yesterday"), "wrong type"),
    ("mc", mc_body(choices=[{"precinct": 0, "choice": {"name": "NOBODY", "party": "REP"},
                             "delta": 1}]), "unknown candidate"),
    ("mc", "[1, 2]", "must be an object"),
    ("sos", json.dumps({"office": "U.S. Senator", "sequence": 1, "timestamp": 1.0,
                        "results": [{"unit": 0, "candidate": "MCCAIN", "partyCode": "X",
                                     "addedVotes": "3"}]}), "unknown party"),
    ("sos", json.dumps({"office": "U.S. Senator", "sequence": 1, "timestamp": "noon",
                        "results": []}), "wrong type"),
    # Deep nesting makes the parser raise RecursionError: bad input, not a retryable error.
    ("ap", "[" * 10_000 + "]" * 10_000, "nested too deeply"),
    ("mc", '{"a":' * 10_000 + "1" + "}" * 10_000, "nested too deeply"),
    ("cnn", "[]", "unknown source"),
    (None, "[]", "unknown source"),
]


@pytest.mark.parametrize(("source", "body", "reason"), BAD)
def test_bad_payloads_are_refused_with_a_reason(source, body, reason):
    with pytest.raises(InvalidPayload, match=reason):
        normalize(source, body)


def test_update_from_wire_rejects_wrong_types():
    good = Update("ap", 1, 0, 1, 101, 5, 1.0).to_wire()
    with pytest.raises(InvalidPayload, match="votes"):
        Update.from_wire([*good[:5], "5", good[6]])
    with pytest.raises(InvalidPayload, match="finite"):
        Update.from_wire([*good[:6], float("nan")])
    with pytest.raises(InvalidPayload, match="7 fields"):
        Update.from_wire(good[:6])
    with pytest.raises(InvalidPayload, match="7 fields"):
        Update.from_wire({"source": "ap"})
    with pytest.raises(InvalidPayload, match="source"):
        Update.from_wire([None, *good[1:]])
    with pytest.raises(InvalidPayload, match="source"):
        Update.from_wire(["ap\tx", *good[1:]])  # would break the COPY text
    with pytest.raises(InvalidPayload, match="votes must be 0"):
        Update.from_wire([*good[:5], -5, good[6]])


def test_every_kind_of_bad_input_the_injector_mixes_in_is_refused():
    from rome.catalog import default_catalog
    from rome.inject import BAD_KINDS, _bad_messages
    from workers.tasks import decode_body

    messages = _bad_messages(default_catalog())
    assert tuple(m.kind for m in messages) == BAD_KINDS
    for m in messages:
        with pytest.raises(InvalidPayload):
            normalize(m.source, decode_body(m.body, m.encoding))
