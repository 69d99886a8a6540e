"""Build snapshots of the shapes the simulator makes, one strategy per feed format."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from hypothesis import strategies as st

from rome.feeds.formats import ap, clarity
from rome.feeds.snapshot import TOTAL, CandidateRef, Count, RaceRef, RaceStatus, Snapshot, UnitRef
from tests.helpers.paths import FIXTURES

NAMES = st.from_regex(r"[A-Z][a-z.'-]{1,9}( [A-Z][a-z]{1,9})?", fullmatch=True)
VOTES = st.integers(0, 3_000_000)
PARTIES = st.sampled_from(["GOP", "DEM", "LIB", "GRN", "IND", "NP"])
VOTE_TYPES = st.lists(st.sampled_from(["election_day", "early", "absentee_mail", "provisional",
                                       "mail", "early_in_person"]), unique=True, max_size=3)
# 2001-09-09 to 2033-05-18: whole seconds, as Clarity and NIST stamp their files. Times
# past the clock are refused by default (ROME_MAX_FEED_AHEAD): round trips pass max_ahead=None.
SECONDS = st.integers(1_000_000_000, 2_000_000_000)
# Every format writes the day of its election; a snapshot says which.
DAYS = st.dates(date(1990, 1, 1), date(2099, 12, 31)).map(date.isoformat)


def fixture(folder: str, name: str) -> bytes:
    return (FIXTURES / folder / name).read_bytes()


def canonical(s: Snapshot) -> Snapshot:
    """Put every part of s in key order: the formats keep what a snapshot says, not its order."""
    return replace(
        s,
        races=tuple(sorted(s.races, key=lambda r: r.key)),
        units=tuple(sorted(s.units, key=lambda u: u.key)),
        candidates=tuple(sorted(s.candidates, key=lambda c: (c.race, c.key))),
        counts=tuple(sorted(s.counts, key=lambda n: (n.race, n.unit, n.candidate, n.vote_type))),
        statuses=tuple(sorted(s.statuses, key=lambda x: x.race)),
    )


def _people(draw, race: str, keys: list[str]) -> list[CandidateRef]:
    return [CandidateRef(race, key, draw(NAMES), draw(NAMES), draw(PARTIES)) for key in keys]


def _status(draw, race: str, candidates: list[CandidateRef], call: bool) -> list[RaceStatus]:
    if not draw(st.booleans()):
        return []
    total = draw(st.integers(1, 3000))
    winner = draw(st.sampled_from(candidates)).key if call and draw(st.booleans()) else None
    return [RaceStatus(race, draw(st.integers(0, total)), total, winner)]


@st.composite
def ap_snapshots(draw) -> Snapshot:
    """A state race and a national-style race, reported by state and counties: totals only."""
    micros = draw(SECONDS) * 1_000_000 + draw(st.integers(0, 999_999))
    state = draw(st.sampled_from(["AZ", "GA", "NH"]))  # NH: AP's subunits are towns there
    level = "township" if state == "NH" else "county"
    top = UnitRef(ap.unit_key(state, "state"), draw(NAMES), "state")
    subunits = [UnitRef(ap.unit_key(state, level, str(4000 + i)), f"{draw(NAMES)} {i}", level,
                        top.key) for i in range(draw(st.integers(0, 4)))]
    races, candidates, counts, statuses = [], [], [], []
    for race_id, office, name in [("0", "President", "President"),
                                  ("3013", "U.S. Senate", "U.S. Senate - Class III (Dem)")]:
        key = ap.race_key(state, race_id)
        races.append(RaceRef(key, name, state, office))
        people = _people(draw, key, [str(100 + i) for i in range(draw(st.integers(1, 4)))])
        candidates += people
        for unit in [top, *subunits]:
            counts += [Count(key, unit.key, c.key, draw(VOTES)) for c in people]
        statuses += _status(draw, key, people, call=True)
    return Snapshot("ap", "ap", micros, micros / 1_000_000, tuple(races), (top, *subunits),
                    tuple(candidates), tuple(counts), tuple(statuses), test=draw(st.booleans()),
                    election_date=draw(DAYS))


def _by_type(draw, race, unit, candidate, vote_types) -> tuple[list[Count], int]:
    counts = [Count(race, unit, candidate, draw(VOTES), t) for t in vote_types]
    return counts, sum(n.votes for n in counts)


@st.composite
def clarity_snapshots(draw) -> Snapshot:
    """A county (or state) file: a top total and vote types, precincts (or counties) below."""
    seconds = draw(SECONDS)
    county_file = draw(st.booleans())
    if county_file:
        top = UnitRef(clarity.unit_key("county", "Maricopa"), "Maricopa", "county")
        below = "precinct"
    else:
        top = UnitRef(clarity.unit_key("state", "AZ"), "AZ", "state")
        below = "county"
    rows = [UnitRef(clarity.unit_key(below, name, top.key), name, below, top.key)
            for name in {f"{draw(NAMES)} {i}" for i in range(draw(st.integers(0, 5)))}]
    races, candidates, counts, statuses = [], [], [], []
    vote_types = draw(VOTE_TYPES)
    for text, vote_for in [("Maricopa County Sheriff", "1"), ("Justice of the Peace", "2")]:
        key = clarity.race_key(text, vote_for)
        races.append(RaceRef(key, text, "" if county_file else "AZ"))
        names = {f"{draw(NAMES)} {draw(NAMES)}" for _ in range(draw(st.integers(1, 4)))}
        people = [CandidateRef(key, clarity.candidate_key(n), "", n, draw(PARTIES))
                  for n in sorted(names)]
        candidates += people
        for c in people:
            counts.append(Count(key, top.key, c.key, draw(VOTES), TOTAL))
            counts += _by_type(draw, key, top.key, c.key, vote_types)[0]
            for row in rows if vote_types else []:
                typed, total = _by_type(draw, key, row.key, c.key, vote_types)
                counts += [*typed, Count(key, row.key, c.key, total, TOTAL)]
        statuses += _status(draw, key, people, call=False)
    return Snapshot("mc", "clarity", seconds, float(seconds), tuple(races), (top, *rows),
                    tuple(candidates), tuple(counts), tuple(statuses), test=draw(st.booleans()),
                    election_date=draw(DAYS))


@st.composite
def nist_snapshots(draw) -> Snapshot:
    """A state report: state, counties and precincts, totals and vote types, a called race."""
    seconds = draw(SECONDS)
    version = seconds * 1_000_000 + draw(st.integers(1, 999_999))
    state = UnitRef("AZ:gpu-az", "Arizona", "state")
    units = [state]
    for i in range(draw(st.integers(0, 3))):
        county = UnitRef(f"AZ:gpu-c{i}", f"{draw(NAMES)} County", "county", state.key)
        units.append(county)
        units += [UnitRef(f"AZ:gpu-c{i}-p{j}", f"Precinct {j}", "precinct", county.key)
                  for j in range(draw(st.integers(0, 3)))]
    races, candidates, counts, statuses = [], [], [], []
    vote_types = draw(VOTE_TYPES)
    for key, name, office in [("AZ:cc-senate", "U.S. Senator", "U.S. Senate"),
                              ("AZ:cc-measure", "Proposition 123", "")]:
        races.append(RaceRef(key, name, "AZ", office))
        keys = [f"AZ:cs-{key[3:]}-{i}" for i in range(draw(st.integers(1, 3)))]
        people = _people(draw, key, keys)
        candidates += people
        for c in people:
            for unit in units:
                typed, total = _by_type(draw, key, unit.key, c.key, vote_types)
                counts += [*typed, Count(key, unit.key, c.key, draw(VOTES) if unit is state
                                         else total, TOTAL)]
        statuses += _status(draw, key, people, call=True)
    return Snapshot("sos", "nist", version, float(seconds), tuple(races), tuple(units),
                    tuple(candidates), tuple(counts), tuple(statuses), test=draw(st.booleans()),
                    election_date=draw(DAYS))
