"""Hold what the format modules share: strict JSON, feed clocks, names made into keys."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from rome.feeds.snapshot import MAX_VERSION, InvalidPayload

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
ISO_TIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)?"
)


def _no_constant(name: str) -> None:
    raise InvalidPayload(f"JSON holds {name}, which is not a number")


def load_json(body: bytes, what: str) -> object:
    """Decode body as strict JSON (no NaN or Infinity), or raise InvalidPayload."""
    try:
        return json.loads(body, parse_constant=_no_constant)
    except RecursionError:
        raise InvalidPayload(f"{what} payload is nested too deeply") from None
    except UnicodeDecodeError as exc:
        reason = f"{exc.reason} at byte {exc.start}"
        raise InvalidPayload(f"{what} payload is not UTF-8: {reason}") from None
    except ValueError as exc:  # JSONDecodeError, and ints too long to convert
        raise InvalidPayload(f"{what} payload is not valid JSON: {exc}") from None


def iso_micros(text: object, where: str) -> int:
    """Read an ISO 8601 time ("2015-11-10T18:55:18.832Z"; no zone means UTC) as µs since 1970."""
    match = ISO_TIME.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidPayload(f"{where} is not an ISO 8601 time: {text!r:.60}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        at = datetime(int(year), int(month), int(day), tzinfo=UTC)
        at += timedelta(hours=int(hour), minutes=int(minute), seconds=int(second))
        if hour == "24" and (minute, second, fraction) != ("00", "00", None):
            raise ValueError("only 24:00:00 may name hour 24")
        if int(hour) > 24 or int(minute) > 59 or int(second) > 59:
            raise ValueError("time of day out of range")
    except (ValueError, OverflowError) as exc:
        raise InvalidPayload(f"{where} is not a real time: {text!r:.60} ({exc})") from None
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        at -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    micros = (at - EPOCH) // MICROSECOND + int((fraction or "0").ljust(6, "0")[:6])
    if not 0 <= micros <= MAX_VERSION:
        raise InvalidPayload(f"{where} is before 1970: {text!r:.60}")
    return micros


def iso_text(micros: int, digits: int = 3) -> str:
    """Write µs since 1970 as ISO 8601 UTC with the given fraction digits (0, 3 or 6)."""
    at = EPOCH + timedelta(microseconds=micros)
    text = at.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += f".{at.microsecond:06d}"[: digits + 1]
    return text + "Z"


def folded(text: str) -> str:
    """Fold a name for use in a key: spaces collapsed, case folded."""
    return " ".join(text.split()).casefold()


def vote_type_slug(name: str) -> str:
    """Name a feed's vote type as a key: "Election Day Votes" -> "election_day"."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.casefold()).strip("_")
    slug = re.sub(r"_(votes|ballots)$", "", slug)
    if not slug:
        return "other"
    if not slug[0].isalpha():
        slug = "v_" + slug
    return slug[:32]


def vote_type_label(slug: str) -> str:
    """Write a vote type key as a feed label: "election_day" -> "Election Day"."""
    return slug.replace("_", " ").title()


# What stream_json reads at a time, and the sentinel left where the streamed list was.
CHUNK_BYTES = 1 << 20
STREAMED = object()
_WS = " \t\n\r"
_DECODER = json.JSONDecoder(parse_constant=_no_constant)
_scan = _DECODER.scan_once
# A syntax error this close to the end of the text read so far may be a value cut by it.
_CUT_MARGIN = 16
_NUMBER_TAIL = re.compile(r"[0-9.eE+-]*\Z")


def byte_chunks(body: bytes, size: int = CHUNK_BYTES) -> Iterator[memoryview]:
    """body in pieces of size bytes, without copying it."""
    view = memoryview(body)
    return (view[i:i + size] for i in range(0, len(body), size))


class JsonStream:
    """Read a JSON object in chunks, as json.loads would, handing out one list's items one by one.

    ``items()`` yields the items of the top-level member ``list_key`` as they
    are decoded, keeping none of them; once it is exhausted ``members`` holds
    the object's other members, with STREAMED where that list was (the
    member's own value when it is not a list; the whole value when the top
    level is not an object). Every value is decoded by the standard library's
    own scanner with the decoder load_json uses, so what json.loads refuses is
    refused here: bad UTF-8, NaN and Infinity, ints too long, nesting deeper
    than the recursion limit (RecursionError, as json.loads raises it).
    Memory is one item and the text read ahead of it (read_bytes at a time,
    CHUNK_BYTES unless given), never the whole document. Unlike json.loads,
    which keeps the last of two members of one name, a second ``list_key``
    member is refused.
    """

    def __init__(self, chunks: Iterable[bytes], what: str, list_key: str, *,
                 read_bytes: int | None = None) -> None:
        self._chunks = iter(chunks)
        self._step = read_bytes or CHUNK_BYTES
        self._what = what
        self._key = list_key
        self._text = ""
        self._pos = 0
        self._offset = 0  # characters dropped before _text
        self._read = 0  # bytes decoded so far
        self._decoder = None
        self._final = False
        self.members: object = None

    # -- reading ---------------------------------------------------------------
    def _more(self, at_least: int = 0) -> bool:
        """Read on (at least at_least bytes, when there are); False at the end of the input."""
        if self._final:
            return False
        data = bytearray()
        # The first read is at least 4 bytes: json.detect_encoding looks at as many.
        while len(data) < max(at_least, self._step, 4 if self._decoder is None else 0):
            chunk = next(self._chunks, None)
            if chunk is None:
                self._final = True
                break
            data += chunk
        if self._decoder is None:  # as json.loads(bytes): its encoding from the first bytes
            encoding = json.detect_encoding(bytes(data[:4]))
            self._decoder = codecs.getincrementaldecoder(encoding)("surrogatepass")
        buffered = len(self._decoder.getstate()[0])
        try:
            piece = self._decoder.decode(data, final=self._final)
        except UnicodeDecodeError as exc:
            where = self._read - buffered + exc.start
            raise InvalidPayload(f"{self._what} payload is not UTF-8: {exc.reason} at byte "
                                 f"{where}") from None
        self._read += len(data)
        self._offset += self._pos
        self._text = self._text[self._pos:] + piece
        self._pos = 0
        return True

    def _peek(self) -> str:
        """The next character past whitespace ("" at the end of the input)."""
        while True:
            text, pos = self._text, self._pos
            while pos < len(text) and text[pos] in _WS:
                pos += 1
            self._pos = pos
            if pos < len(text) or not self._more():
                return text[pos] if pos < len(text) else ""

    def _fail(self, message: str, pos: int | None = None) -> InvalidPayload:
        pos = self._pos if pos is None else pos
        return InvalidPayload(f"{self._what} payload is not valid JSON: {message} "
                              f"(char {self._offset + pos})")

    def _value(self) -> object:
        """Decode the value at the current position."""
        self._peek()
        while True:
            text, pos = self._text, self._pos
            try:
                value, end = _scan(text, pos)
                # A number read up to the end of the text may go on past it ("1." of "1.5").
                if self._final or (end < len(text) and not (
                        isinstance(value, int | float) and _NUMBER_TAIL.match(text, end))):
                    self._pos = end
                    return value
            except StopIteration:
                if self._final:
                    raise self._fail("Expecting value") from None
            except json.JSONDecodeError as exc:
                cut = (exc.pos >= len(text) - _CUT_MARGIN
                       or exc.msg.startswith("Unterminated string"))
                if self._final or not cut:
                    raise self._fail(exc.msg, exc.pos) from None
            except InvalidPayload:
                raise
            except ValueError as exc:  # an int too long to convert
                raise InvalidPayload(f"{self._what} payload is not valid JSON: {exc}") from None
            # Cut by the end of what was read: read as much again (linear in all) and retry.
            self._more(len(text) - pos)

    def _expect(self, char: str, message: str) -> None:
        if self._peek() != char:
            raise self._fail(message)
        self._pos += 1

    # -- the document ----------------------------------------------------------
    def items(self) -> Iterator[object]:
        if self._peek() != "{":  # not an object: decode it whole, for the caller to refuse
            self.members = self._value()
            self._end()
            return
        self._pos += 1
        members: dict = {}
        if self._peek() == "}":
            self._pos += 1
        else:
            while True:
                if self._peek() != '"':
                    raise self._fail("Expecting property name enclosed in double quotes")
                key = self._value()
                self._expect(":", "Expecting ':' delimiter")
                if key == self._key and self._key in members:
                    raise InvalidPayload(f"{self._what} payload has two {key!r} members")
                if key == self._key and self._peek() == "[":
                    self._pos += 1
                    members[key] = STREAMED
                    yield from self._list()
                else:
                    members[key] = self._value()
                after = self._peek()
                self._pos += 1
                if after == "}":
                    break
                if after != ",":
                    raise self._fail("Expecting ',' delimiter", self._pos - 1)
        self.members = members
        self._end()

    def _list(self) -> Iterator[object]:
        if self._peek() == "]":
            self._pos += 1
            return
        while True:
            yield self._value()
            after = self._peek()
            self._pos += 1
            if after == "]":
                return
            if after != ",":
                raise self._fail("Expecting ',' delimiter", self._pos - 1)

    def _end(self) -> None:
        if self._peek() != "":
            raise self._fail("Extra data")
