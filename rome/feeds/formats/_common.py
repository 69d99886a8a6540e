"""Hold what the format modules share: strict JSON, feed clocks, names made into keys."""

from __future__ import annotations

import json
import re
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
