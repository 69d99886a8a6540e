"""Make a national night at real size: every state, its counties, many races, in AP's terms.

The benchmark (``rome bench national``) and the national-size tests need an AP
answer as big as a general election's: 50 states, their 3,000-odd counties
(towns in New England), a dozen statewide races each and a few candidates.
``national`` builds it as a Snapshot (rendered with Rome's own AP renderer,
rome/feeds/formats/ap.py, it is the file a results desk would fetch), and
``changed`` makes the next version with a share of its counts moved on.
Everything follows from the seed: the same arguments give the same night.
"""

from __future__ import annotations

import random
from dataclasses import replace

from rome.feeds.formats.ap import NEW_ENGLAND, race_key, unit_key
from rome.feeds.snapshot import (
    TOTAL,
    CandidateRef,
    Count,
    RaceRef,
    RaceStatus,
    Snapshot,
    UnitRef,
)

# Counties (towns in New England) per state: 3,309 units in all, as many as AP reports.
STATE_UNITS = {
    "AL": 67, "AK": 40, "AZ": 15, "AR": 75, "CA": 58, "CO": 64, "CT": 169, "DE": 3, "FL": 67,
    "GA": 159, "HI": 5, "ID": 44, "IL": 102, "IN": 92, "IA": 99, "KS": 105, "KY": 120,
    "LA": 64, "ME": 50, "MD": 24, "MA": 50, "MI": 83, "MN": 87, "MS": 82, "MO": 115,
    "MT": 56, "NE": 93, "NV": 17, "NH": 40, "NJ": 21, "NM": 33, "NY": 62, "NC": 100,
    "ND": 53, "OH": 88, "OK": 77, "OR": 36, "PA": 67, "RI": 39, "SC": 46, "SD": 66,
    "TN": 95, "TX": 100, "UT": 29, "VT": 30, "VA": 133, "WA": 39, "WV": 55, "WI": 72,
    "WY": 23,
}
OFFICES = ("President", "U.S. Senate", "Governor", "Lt. Governor", "Attorney General",
           "Secretary of State", "Treasurer", "Auditor", "Comptroller", "Insurance Commissioner",
           "Agriculture Commissioner", "Superintendent", "Labor Commissioner", "Land Commissioner",
           "Railroad Commissioner", "Public Service Commissioner")
PARTIES = ("DEM", "GOP", "LIB", "GRN", "IND")
START = 1_730_851_200_000_000  # 2024-11-06 00:00 UTC, in µs: AP's version is its timestamp


def national(races_per_state: int = 11, candidates: int = 3, *, seed: int = 2024,
             version: int = START) -> Snapshot:
    """A national AP answer: each state's races counted at the state and in every county.

    The counts are races x (counties + 1) x candidates: 11 races and 3
    candidates make 110,847 counts (a 14 MB AP answer), 40 races 403,080 (up
    to 16 offices, then numbered ballot measures).
    """
    rng = random.Random(seed)
    races, units, refs, counts, statuses = [], [], [], [], []
    for state, n_units in STATE_UNITS.items():
        top = UnitRef(unit_key(state, "state"), state, "state")
        level = "township" if state in NEW_ENGLAND else "county"
        subunits = [UnitRef(unit_key(state, level, f"{10_000 + i}"), f"{state} {level} {i}",
                            level, top.key) for i in range(n_units)]
        units += [top, *subunits]
        for r in range(races_per_state):
            office = OFFICES[r] if r < len(OFFICES) else "Ballot Measure"
            seat = "" if r < len(OFFICES) else f" - {r - len(OFFICES) + 1}"
            key = race_key(state, f"{1000 + r}")
            races.append(RaceRef(key, office + seat, state, office))
            people = [CandidateRef(key, f"{key}-{c}", f"First{c}", f"Last{c}",
                                   PARTIES[c % len(PARTIES)]) for c in range(candidates)]
            refs += people
            totals = [0] * candidates
            for unit in subunits:
                for c, person in enumerate(people):
                    votes = rng.randrange(0, 50_000)
                    totals[c] += votes
                    counts.append(Count(key, unit.key, person.key, votes, TOTAL))
            counts += [Count(key, top.key, p.key, totals[c], TOTAL) for c, p in enumerate(people)]
            statuses.append(RaceStatus(key, n_units, n_units))
    return Snapshot(source="ap", format="ap", version=version, feed_at=version / 1_000_000,
                    races=tuple(races), units=tuple(units), candidates=tuple(refs),
                    counts=tuple(counts), statuses=tuple(statuses),
                    election_date="2024-11-05")


def changed(snapshot: Snapshot, share: float, *, seed: int, seconds: float = 30.0) -> Snapshot:
    """The next version of snapshot, seconds later, with share of its counts grown."""
    rng = random.Random(seed)
    counts = list(snapshot.counts)
    for i in rng.sample(range(len(counts)), round(len(counts) * share)):
        counts[i] = replace(counts[i], votes=counts[i].votes + rng.randrange(1, 500))
    version = snapshot.version + round(seconds * 1_000_000)
    return replace(snapshot, version=version, feed_at=version / 1_000_000, counts=tuple(counts))
