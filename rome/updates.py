"""Define the canonical update every source's payload is normalized into."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# More votes than this in one update of one reporting unit is a feed error, not a count.
MAX_VOTES_PER_UPDATE = 10_000_000
# A feed body larger than this is refused before it is parsed.
MAX_PAYLOAD_BYTES = 1_000_000
MAX_TICK = 2**62  # bigint column
MAX_UNIT = 2**31 - 1  # integer column
MAX_TIME = 32_503_680_000.0  # year 3000, within every timestamp type
SOURCE_ID = re.compile(r"[a-z]{1,16}")


class InvalidPayload(ValueError):
    """A payload that can never become a valid update; the message is the reason."""


@dataclass(frozen=True, slots=True)
class Update:
    """Votes added for one candidate by one source in one tick of one reporting unit."""

    source: str
    tick: int
    unit: int
    race_id: int
    candidate_id: int
    votes: int
    emitted_at: float

    def __post_init__(self) -> None:
        # Everything that reaches caesar must fit its columns: a value that
        # cannot would fail the whole batch in the database instead.
        if not (0 <= self.votes <= MAX_VOTES_PER_UPDATE):
            raise InvalidPayload(f"votes must be 0 to {MAX_VOTES_PER_UPDATE}, got {self.votes}")
        if not (0 <= self.tick <= MAX_TICK):
            raise InvalidPayload(f"tick must be 0 to {MAX_TICK}, got {self.tick}")
        if not (0 <= self.unit <= MAX_UNIT):
            raise InvalidPayload(f"unit must be 0 to {MAX_UNIT}, got {self.unit}")
        if not (0.0 <= self.emitted_at <= MAX_TIME):
            raise InvalidPayload(f"emitted_at must be 0 to {MAX_TIME:.0f}, got {self.emitted_at}")
        if not SOURCE_ID.fullmatch(self.source):
            raise InvalidPayload(f"source must be a short lowercase id, got {self.source!r:.40}")

    @property
    def id(self) -> str:
        # Stable across redelivery, republish and a second beat: it depends only
        # on where the votes come from, never on when or how often they arrive.
        return f"{self.source}:{self.tick}:{self.unit}:{self.candidate_id}"

    def to_wire(self) -> list:
        """Return the update as caesar's message carries it: a list, not a dict,
        because encoding and decoding 7 positional fields is the cheaper half."""
        return [self.source, self.tick, self.unit, self.race_id, self.candidate_id, self.votes,
                self.emitted_at]

    @classmethod
    def from_wire(cls, row: object) -> Update:
        """Rebuild an update from to_wire's list, checking every field's type."""
        if not isinstance(row, list) or len(row) != 7:
            raise InvalidPayload(f"update must be a list of 7 fields, got {row!r:.80}")
        source, tick, unit, race_id, candidate_id, votes, emitted_at = row
        if not isinstance(source, str):
            raise InvalidPayload(f"source must be a string, got {source!r:.40}")
        return cls(
            source=source,
            tick=_integer(tick, "tick"),
            unit=_integer(unit, "unit"),
            race_id=_integer(race_id, "race_id"),
            candidate_id=_integer(candidate_id, "candidate_id"),
            votes=_integer(votes, "votes"),
            emitted_at=_finite(emitted_at),
        )


def _integer(value: object, name: str) -> int:
    # bool is an int subclass; True votes is a bug upstream, not one vote.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidPayload(f"{name} must be an integer, got {value!r:.40}")
    return value


def _finite(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidPayload(f"emitted_at must be a finite number, got {value!r:.40}")
    return float(value)
