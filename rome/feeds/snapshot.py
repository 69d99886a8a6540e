"""Define the canonical cumulative snapshot every feed format is normalized into.

A feed response (an AP API answer, a Clarity ``detail.xml``, a NIST report)
becomes one ``Snapshot``: the races, reporting units and candidates it
describes (reference data, keyed by the feed's own stable keys) and its
cumulative counts, one per (race, unit, candidate, vote type), all at one
``version`` — the source's monotone ordering key. Keys are the feed's, scoped
to its source; Rome's ids are assigned when caesar stores them.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

# More votes than this in one count is a feed error, not a count.
MAX_VOTES = 2_000_000_000  # also keeps the original's int32 voteCount valid
MAX_VERSION = 2**63 - 1  # bigint column
MAX_TIME = 32_503_680_000.0  # year 3000, within every timestamp type
# How far ahead of this machine's clock a feed's own time may be. Newest wins
# per count, so one file dated in the future would outrank every real update
# after it (issue 23); a day covers any clock skew or time-zone slip a real
# feed shows. ROME_MAX_FEED_AHEAD overrides it (rome/settings.py).
MAX_AHEAD = 86_400.0
MAX_KEY = 200
MAX_NAME = 300
MAX_CODE = 16  # a state's postal code, a party's code
SOURCE_ID = re.compile(r"[a-z][a-z0-9_]{0,15}")
VOTE_TYPE = re.compile(r"[a-z][a-z0-9_]{0,31}")
ISO_DATE = re.compile(r"\d{4}-\d\d-\d\d")

# Levels a reporting unit can sit at, from the top down; a race's total for a
# source is the sum of its units at the topmost level present.
LEVELS = ("national", "state", "district", "county", "township", "precinct", "batch")
LEVEL_RANK = {level: rank for rank, level in enumerate(LEVELS)}
TOTAL = "total"


class InvalidPayload(ValueError):
    """A payload that can never become a valid snapshot; the message is the reason."""


@dataclass(frozen=True, slots=True)
class RaceRef:
    """A race (contest) as the feed describes it."""

    key: str  # stable within the source: survives across files of one night
    name: str
    state: str = ""  # postal code where the feed gives one
    office: str = ""


@dataclass(frozen=True, slots=True)
class UnitRef:
    """A reporting unit: a state, county, precinct... with its place in the hierarchy."""

    key: str  # stable within the source
    name: str
    level: str  # one of LEVELS
    parent: str | None = None


@dataclass(frozen=True, slots=True)
class CandidateRef:
    """A candidate or ballot choice of one race."""

    race: str  # RaceRef.key
    key: str  # stable within the race and source
    first: str
    last: str
    party: str  # canonical code: see canonical_party


@dataclass(frozen=True, slots=True)
class Count:
    """Cumulative votes for one candidate in one unit, of one vote type."""

    race: str
    unit: str
    candidate: str
    votes: int
    vote_type: str = TOTAL


@dataclass(frozen=True, slots=True)
class RaceStatus:
    """What the feed says of a race as a whole: precincts reporting, a call."""

    race: str
    precincts_reporting: int | None = None
    precincts_total: int | None = None
    winner: str | None = None  # CandidateRef.key of a called race


@dataclass(frozen=True)
class Snapshot:
    """One feed response, normalized: reference data plus cumulative counts at one version."""

    source: str
    format: str  # "ap", "clarity", "nist"
    version: int  # monotone per source; newer wins per key
    feed_at: float  # the feed's own timestamp, seconds since 1970
    races: tuple[RaceRef, ...]
    units: tuple[UnitRef, ...]
    candidates: tuple[CandidateRef, ...]
    counts: tuple[Count, ...]
    statuses: tuple[RaceStatus, ...] = ()
    test: bool = False  # the feed marks this as test data
    election_date: str = ""  # ISO 8601 "2016-11-08", where the feed says which day it is about
    meta: dict = field(default_factory=dict, compare=False)  # format-specific extras

    def validate(self, *, max_ahead: float | None = MAX_AHEAD,
                 now: float | None = None) -> Snapshot:
        """Check every field and every reference; raise InvalidPayload naming the first fault.

        A feed time more than max_ahead seconds past now (this machine's clock
        unless given) is refused: see MAX_AHEAD. None skips that check.
        """
        if not isinstance(self.source, str) or not SOURCE_ID.fullmatch(self.source):
            raise InvalidPayload(f"source must be a short lowercase id, got {self.source!r:.40}")
        if not isinstance(self.format, str) or not SOURCE_ID.fullmatch(self.format):
            raise InvalidPayload(f"format must be a short lowercase name, got {self.format!r:.40}")
        _whole(self.version, "version", 0, MAX_VERSION)
        if not (isinstance(self.feed_at, (int, float)) and math.isfinite(self.feed_at)
                and 0.0 <= self.feed_at <= MAX_TIME):
            raise InvalidPayload(f"feed time must be 0 to {MAX_TIME:.0f}, got {self.feed_at!r:.40}")
        if max_ahead is not None:
            _not_ahead(self.feed_at, time.time() if now is None else now, max_ahead)
        if self.election_date != "" and not is_iso_date(self.election_date):
            raise InvalidPayload(
                f"election date must be YYYY-MM-DD, got {self.election_date!r:.40}")
        races = {r.key for r in self.races}
        units = {u.key for u in self.units}
        for r in self.races:
            _key(r.key, "race key")
            _name(r.name, f"race {r.key!r}")
            _name(r.office, f"race {r.key!r} office")
            _name(r.state, f"race {r.key!r} state", MAX_CODE)
        if len(races) != len(self.races):
            raise InvalidPayload("a race key is used twice")
        for u in self.units:
            _key(u.key, "unit key")
            _name(u.name, f"unit {u.key!r}")
            if u.level not in LEVEL_RANK:
                raise InvalidPayload(f"unit {u.key!r:.60} has unknown level {u.level!r:.40}")
            if u.parent is not None and u.parent not in units:
                raise InvalidPayload(f"unit {u.key!r:.60} names unknown parent {u.parent!r:.60}")
        if len(units) != len(self.units):
            raise InvalidPayload("a unit key is used twice")
        candidates = set()
        for c in self.candidates:
            if c.race not in races:
                raise InvalidPayload(f"candidate {c.key!r:.60} is in unknown race {c.race!r:.60}")
            _key(c.key, "candidate key")
            for part, value, most in (("first", c.first, MAX_NAME), ("last", c.last, MAX_NAME),
                                      ("party", c.party, MAX_CODE)):
                if not isinstance(value, str) or len(value) > most or "\x00" in value:
                    raise InvalidPayload(f"candidate {c.key!r:.60} has a bad {part} name")
            if (c.race, c.key) in candidates:
                raise InvalidPayload(f"candidate {c.key!r:.60} is listed twice in {c.race!r:.60}")
            candidates.add((c.race, c.key))
        seen = set()
        for n in self.counts:
            where = f"count {n.race!r:.40}/{n.unit!r:.40}/{n.candidate!r:.40}"
            if (n.race, n.candidate) not in candidates:
                raise InvalidPayload(f"{where} names an unknown race or candidate")
            if n.unit not in units:
                raise InvalidPayload(f"{where} names an unknown unit")
            if not isinstance(n.vote_type, str) or not VOTE_TYPE.fullmatch(n.vote_type):
                raise InvalidPayload(f"{where} has a bad vote type {n.vote_type!r:.40}")
            _whole(n.votes, f"{where} votes", 0, MAX_VOTES)
            key = (n.race, n.unit, n.candidate, n.vote_type)
            if key in seen:
                raise InvalidPayload(f"{where} ({n.vote_type}) is counted twice")
            seen.add(key)
        for s in self.statuses:
            if s.race not in races:
                raise InvalidPayload(f"status for unknown race {s.race!r:.60}")
            for name in ("precincts_reporting", "precincts_total"):
                value = getattr(s, name)
                if value is not None:
                    _whole(value, f"race {s.race!r:.40} {name}", 0, MAX_VOTES)
            if s.winner is not None and (s.race, s.winner) not in candidates:
                raise InvalidPayload(f"race {s.race!r:.40} calls unknown {s.winner!r:.40}")
        return self

    def to_wire(self) -> dict:
        """Return the snapshot as a compact JSON-able dict (lists, not objects)."""
        return {
            "source": self.source,
            "format": self.format,
            "version": self.version,
            "feed_at": self.feed_at,
            "test": self.test,
            "election_date": self.election_date,
            "races": [[r.key, r.name, r.state, r.office] for r in self.races],
            "units": [[u.key, u.name, u.level, u.parent] for u in self.units],
            "candidates": [[c.race, c.key, c.first, c.last, c.party] for c in self.candidates],
            "counts": [[n.race, n.unit, n.candidate, n.vote_type, n.votes] for n in self.counts],
            "statuses": [[s.race, s.precincts_reporting, s.precincts_total, s.winner]
                         for s in self.statuses],
        }

    @classmethod
    def from_wire(cls, data: object, *, max_ahead: float | None = MAX_AHEAD) -> Snapshot:
        """Rebuild and validate a snapshot from to_wire's dict."""
        if not isinstance(data, dict):
            raise InvalidPayload(f"snapshot must be an object, got {type(data).__name__}")
        try:
            snapshot = cls(
                source=data["source"],
                format=data["format"],
                version=data["version"],
                feed_at=data["feed_at"],
                test=data.get("test") is True,
                # Messages sent before snapshots carried a date have none.
                election_date=data.get("election_date", ""),
                races=tuple(RaceRef(*_row(r, 4)) for r in data["races"]),
                units=tuple(UnitRef(*_row(u, 4)) for u in data["units"]),
                candidates=tuple(CandidateRef(*_row(c, 5)) for c in data["candidates"]),
                counts=tuple(_count(n) for n in data["counts"]),
                statuses=tuple(RaceStatus(*_row(s, 4)) for s in data.get("statuses", [])),
            )
        except (KeyError, TypeError) as exc:
            raise InvalidPayload(f"snapshot is malformed: {exc!r:.200}") from None
        return snapshot.validate(max_ahead=max_ahead)

    def race_keys(self) -> set[str]:
        return {r.key for r in self.races}


def is_iso_date(text: object) -> bool:
    """Tell whether text is a real day written YYYY-MM-DD."""
    if not isinstance(text, str) or not ISO_DATE.fullmatch(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _not_ahead(feed_at: float, now: float, max_ahead: float) -> None:
    if feed_at > now + max_ahead:
        raise InvalidPayload(
            f"feed time {_when(feed_at)} is {feed_at - now:,.0f} s ahead of this machine's "
            f"clock ({_when(now)}), more than the {max_ahead:,.0f} s allowed "
            "(ROME_MAX_FEED_AHEAD): a future-dated file would outrank every real update")


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _row(value: object, size: int) -> list:
    if not isinstance(value, list) or len(value) != size:
        raise InvalidPayload(f"expected a list of {size} fields, got {value!r:.80}")
    return value


def _count(value: object) -> Count:
    race, unit, candidate, vote_type, votes = _row(value, 5)
    return Count(race, unit, candidate, votes, vote_type)


def _whole(value: object, name: str, low: int, high: int) -> int:
    # bool is an int subclass; True votes is a bug upstream, not one vote.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidPayload(f"{name} must be a whole number, got {value!r:.40}")
    if value < low:
        raise InvalidPayload(f"{name} is negative: {value}")
    if value > high:
        raise InvalidPayload(f"{name} is absurd: {value} > {high}")
    return value


def _key(value: object, name: str) -> None:
    if not isinstance(value, str) or not value or len(value) > MAX_KEY or "\x00" in value:
        raise InvalidPayload(f"{name} must be 1 to {MAX_KEY} characters, got {value!r:.60}")


def _name(value: object, where: str, most: int = MAX_NAME) -> None:
    if not isinstance(value, str) or len(value) > most or "\x00" in value:
        raise InvalidPayload(f"{where} has a bad name {value!r:.60}")


# Spellings real feeds use for the same party, folded into one code.
PARTY_SPELLINGS = {
    "GOP": "GOP", "REP": "GOP", "R": "GOP", "REPUBLICAN": "GOP",
    "DEM": "DEM", "D": "DEM", "DEMOCRATIC": "DEM", "DEMOCRAT": "DEM",
    "LIB": "LIB", "L": "LIB", "LBT": "LIB", "LIBERTARIAN": "LIB",
    "GRN": "GRN", "G": "GRN", "GREEN": "GRN",
    "IND": "IND", "I": "IND", "INDEPENDENT": "IND",
    "NP": "NP", "NON": "NP", "NONPARTISAN": "NP", "": "NP",
}


def canonical_party(spelling: str | None) -> str:
    """Fold a feed's party spelling ("Dem", "DEM", "Democratic") into one code."""
    text = (spelling or "").strip().upper().rstrip(".")
    folded = PARTY_SPELLINGS.get(text) or PARTY_SPELLINGS.get(text.split(" ")[0] if text else "")
    return folded or text[:8]
