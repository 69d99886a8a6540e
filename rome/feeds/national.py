"""Make a national night at real size: every state, its counties, many races, in AP's terms.

The benchmark (``rome bench national``) and the national-size tests need an AP
answer as big as a general election's: 50 states, their 3,000-odd counties
(towns in New England), a dozen statewide races each and a few candidates.
``national`` builds it as a Snapshot (rendered with Rome's own AP renderer,
rome/feeds/formats/ap.py, it is the file a results desk would fetch), and
``changed`` makes the next version with a share of its counts moved on.
``clarity_state`` and ``clarity_changed`` do the same for a Clarity state: one
detail.xml a county (rendered with rome/feeds/formats/clarity.py), counted in
every precinct, as Georgia's 159 counties publish theirs.
Everything follows from the seed: the same arguments give the same night.
"""

from __future__ import annotations

import random
from dataclasses import replace

from rome.feeds.formats import clarity
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
    """The next version of snapshot, seconds later, with share of its counts grown, as a
    feed grows them: votes added in a unit at the bottom are added to each unit above it
    too, so every level still sums (no level disagreement), and the counts changed, those
    above included, are share of all."""
    rng = random.Random(seed)
    counts = list(snapshot.counts)
    parents = {u.key: u.parent for u in snapshot.units}
    at = {(n.race, n.unit, n.candidate, n.vote_type): i for i, n in enumerate(counts)}
    above = set(parents.values())
    leaves = [i for i, n in enumerate(counts) if n.unit not in above]
    want, grown = round(len(counts) * share), {}
    for i in rng.sample(leaves, len(leaves)):
        if len(grown) == want:
            break
        n, chain, unit = counts[i], [i], parents.get(counts[i].unit)
        while unit is not None and (n.race, unit, n.candidate, n.vote_type) in at:
            chain.append(at[(n.race, unit, n.candidate, n.vote_type)])
            unit = parents.get(unit)
        if len(grown) + len(set(chain) - grown.keys()) > want:
            continue
        delta = rng.randrange(1, 500)
        for j in chain:
            grown[j] = grown.get(j, 0) + delta
    for i, delta in grown.items():
        counts[i] = replace(counts[i], votes=counts[i].votes + delta)
    version = snapshot.version + round(seconds * 1_000_000)
    return replace(snapshot, version=version, feed_at=version / 1_000_000, counts=tuple(counts))


# A Clarity state of county precinct files, Georgia's shape: 159 counties and about 2,600
# precincts (Georgia had 2,656 in November 2020), few in most counties and hundreds in a
# few. Each county publishes its own detail.xml, its contests counted in every precinct
# by vote type (the names Georgia's files use).
CLARITY_COUNTIES = 159
CLARITY_PRECINCTS = 2_600
CLARITY_CONTESTS = (
    ("President of the United States", ("Donald J. Trump (Rep)", "Joseph R. Biden (Dem)",
                                        "Jo Jorgensen (Lib)")),
    ("US Senate", ("David A. Perdue (Rep)", "Jon Ossoff (Dem)", "Shane Hazel (Lib)")),
    ("US Senate Special", ("Kelly Loeffler (Rep)", "Doug Collins (Rep)",
                           "Raphael Warnock (Dem)", "Matt Lieberman (Dem)",
                           "Deborah Jackson (Dem)", "Brian Slowinski (Lib)")),
    ("Public Service Commission District 4", ("Lauren Bubba McDonald (Rep)",
                                              "Daniel Blackman (Dem)", "Nathan Wilson (Lib)")),
    ("Constitutional Amendment 1", ("Yes", "No")),
    ("Statewide Referendum A", ("Yes", "No")),
)
CLARITY_VOTE_TYPES = (("election_day", 800), ("advanced_voting", 1_500),
                      ("absentee_by_mail", 600), ("provisional", 5))
CLARITY_VERSION = 270_000  # a county's first version folder


def clarity_county_name(i: int) -> str:
    """County i as Clarity's list and URLs write it (``Ben_Hill``); its Region has spaces."""
    return f"County_{i + 1:03d}"


def clarity_state(counties: int = CLARITY_COUNTIES, precincts: int = CLARITY_PRECINCTS, *,
                  seed: int = 2024, version: int = CLARITY_VERSION) -> list[Snapshot]:
    """A Clarity state's county files, one snapshot each as its detail.xml says it.

    Each county's contests are counted in every precinct by vote type, with each
    precinct's total and the county's figures (by vote type and in all) their
    sums, as Clarity writes them; render each with rome/feeds/formats/clarity.py.
    The precincts (at least one a county) are spread unevenly, as a state's are.
    The snapshots are not scoped: the poller's claim check names the county
    (rome/feeds/poll/clarity.py: scoped).
    """
    rng = random.Random(seed)
    weights = [rng.lognormvariate(0, 1.2) for _ in range(counties)]
    sizes = [max(1, round(w / sum(weights) * precincts)) for w in weights]
    biggest = sizes.index(max(sizes))
    sizes[biggest] = max(1, sizes[biggest] + precincts - sum(sizes))  # exactly `precincts`
    feed_at = START // 1_000_000
    files = []
    for i, n_precincts in enumerate(sizes):
        region = clarity_county_name(i).replace("_", " ")
        top = UnitRef(clarity.unit_key("county", region), region, "county")
        below = [UnitRef(clarity.unit_key("precinct", f"Precinct {p + 1:03d}", top.key),
                         f"Precinct {p + 1:03d}", "precinct", top.key)
                 for p in range(n_precincts)]
        races, refs, counts, statuses = [], [], [], []
        for text, choices in CLARITY_CONTESTS:
            key = clarity.race_key(text, "1")
            races.append(RaceRef(key, text, ""))
            statuses.append(RaceStatus(key, n_precincts, n_precincts))
            for name in choices:
                person = clarity.candidate_key(name)
                refs.append(CandidateRef(key, person, "", name, _named_party(name)))
                at_top = dict.fromkeys((slug for slug, _ in CLARITY_VOTE_TYPES), 0)
                for unit in below:
                    total = 0
                    for slug, most in CLARITY_VOTE_TYPES:
                        votes = rng.randrange(0, most)
                        counts.append(Count(key, unit.key, person, votes, slug))
                        at_top[slug] += votes
                        total += votes
                    counts.append(Count(key, unit.key, person, total, TOTAL))
                counts += [Count(key, top.key, person, v, slug) for slug, v in at_top.items()]
                counts.append(Count(key, top.key, person, sum(at_top.values()), TOTAL))
        files.append(Snapshot(source="clarity", format="clarity", version=version,
                              feed_at=feed_at, races=tuple(races), units=(top, *below),
                              candidates=tuple(refs), counts=tuple(counts),
                              statuses=tuple(statuses), election_date="2024-11-05",
                              meta={"election_name": "General Election"}))
    return files


def _named_party(name: str) -> str:
    party = name.rpartition("(")[2].rstrip(")") if name.endswith(")") else ""
    return {"Rep": "GOP", "Dem": "DEM", "Lib": "LIB"}.get(party, "NP")


def clarity_changed(files: list[Snapshot], share: float, *, seed: int, seconds: int = 30,
                    every: bool = False) -> list[Snapshot]:
    """The state's next county files: share of all their counts grown, seconds later.

    A precinct's figure of one vote type grows with the figures that sum it (the
    precinct's total, the county's figure of that vote type and its total),
    until share of the counts have changed. A county whose figures moved gets
    the next version folder, as Clarity numbers a county's uploads; the others
    keep theirs (the poller does not fetch them), unless every: then every
    county is published again, changed or not.
    """
    rng = random.Random(seed)
    version = max(f.version for f in files) + 1
    feed_at = max(f.feed_at for f in files) + seconds
    leaves = [(i, j) for i, f in enumerate(files) for j, n in enumerate(f.counts)
              if n.vote_type != TOTAL and n.unit != f.units[0].key]
    target = round(sum(len(f.counts) for f in files) * share)
    grown: list[dict] = [{} for _ in files]  # per county: (race, unit, candidate, type) -> +
    changed = 0
    for pick in rng.sample(range(len(leaves)), len(leaves)) if target else ():
        if changed >= target:
            break
        i, j = leaves[pick]
        n, top = files[i].counts[j], files[i].units[0].key
        delta = rng.randrange(1, 50)
        for key in ((n.race, n.unit, n.candidate, n.vote_type),
                    (n.race, n.unit, n.candidate, TOTAL),
                    (n.race, top, n.candidate, n.vote_type), (n.race, top, n.candidate, TOTAL)):
            changed += key not in grown[i]
            grown[i][key] = grown[i].get(key, 0) + delta
    out = []
    for f, more in zip(files, grown, strict=True):
        if not more and not every:
            out.append(f)
            continue
        counts = tuple(replace(n, votes=n.votes + more[(n.race, n.unit, n.candidate, n.vote_type)])
                       if (n.race, n.unit, n.candidate, n.vote_type) in more else n
                       for n in f.counts)
        out.append(replace(f, version=version, feed_at=feed_at, counts=counts))
    return out
