"""Simulate the three results feeds, each in its own format, one tick at a time.

A tick's content depends only on (seed, source, tick): two beat schedulers
firing the same tick produce the same bytes and so the same update ids.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass

from rome.catalog import Candidate, Catalog, default_catalog

AP_PARTY_SPELLING = {"GOP": "GOP", "DEM": "Dem", "LIB": "Lib", "GRN": "Grn"}
MC_PARTY = {"GOP": "REP", "DEM": "DEM"}
SOS_PARTY = {"GOP": "R", "DEM": "D"}


@dataclass(frozen=True)
class Row:
    unit: int
    candidate: Candidate
    votes: int


def roll_tick(
    catalog: Catalog, source: str, tick: int, seed: str, chance: float, units: int
) -> list[Row]:
    """Decide, per reporting unit, whether it reports and who gains 0-999 votes."""
    rng = random.Random(f"{seed}:{source}:{tick}")
    candidates = catalog.race_of(source).candidates
    rows = []
    for unit in range(units):
        if rng.random() < chance:
            rows.append(Row(unit, rng.choice(candidates), rng.randint(0, 999)))
    return rows


def render_ap(catalog: Catalog, tick: int, rows: list[Row], at: float) -> str:
    race = catalog.race_of("ap")
    return json.dumps([
        {
            "raceID": race.id,
            "raceName": race.name,
            "candidateID": int(r.candidate.source_key),
            "first": r.candidate.first,
            "last": r.candidate.last,
            "party": AP_PARTY_SPELLING[r.candidate.party],
            "voteCount": r.votes,
            "source": "AP",
            "tick": tick,
            "unit": r.unit,
            "emittedAt": at,
        }
        for r in rows
    ])


def render_mc(catalog: Catalog, tick: int, rows: list[Row], at: float) -> str:
    return json.dumps({
        "feed": "maricopa",
        "contest": {"title": catalog.race_of("mc").name},
        "report": {"seq": tick, "generated": at},
        "choices": [
            {
                "precinct": r.unit,
                "choice": {"name": r.candidate.source_key, "party": MC_PARTY[r.candidate.party]},
                "delta": r.votes,
            }
            for r in rows
        ],
    })


def render_sos(catalog: Catalog, tick: int, rows: list[Row], at: float) -> str:
    return json.dumps({
        "agency": "AZSOS",
        "office": catalog.race_of("sos").name,
        "sequence": tick,
        "timestamp": at,
        "results": [
            {
                "unit": r.unit,
                "candidate": r.candidate.source_key,
                "partyCode": SOS_PARTY[r.candidate.party],
                "addedVotes": str(r.votes),
            }
            for r in rows
        ],
    })


RENDERERS = {"ap": render_ap, "mc": render_mc, "sos": render_sos}


def emit_tick(
    source: str,
    tick: int,
    *,
    seed: str,
    chance: float,
    units: int = 1,
    catalog: Catalog | None = None,
    now: float | None = None,
) -> tuple[str | None, int]:
    """Return (feed body or None when nothing reported, row count) for one tick."""
    catalog = catalog or default_catalog()
    rows = roll_tick(catalog, source, tick, seed, chance, units)
    if not rows:
        return None, 0
    return RENDERERS[source](catalog, tick, rows, time.time() if now is None else now), len(rows)


def current_tick(interval: float, now: float | None = None) -> int:
    """Number the wall-clock slot of length interval that now falls in."""
    return int((time.time() if now is None else now) // interval)
