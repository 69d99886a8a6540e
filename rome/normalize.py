"""Turn each source's own feed format into canonical updates, or say why not.

The three feeds differ as real ones do:

- ``ap``: a JSON list of flat rows in the original demo's field names, with
  AP's own candidate numbers (reused in every race) and party spelled "Dem".
- ``mc``: one nested JSON object per report, contest and choices by name,
  parties "REP"/"DEM".
- ``sos``: one JSON object with a ``results`` list, candidates by surname
  code, parties "R"/"D", and vote counts as strings.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable

from rome.catalog import Candidate, Catalog, default_catalog
from rome.updates import MAX_PAYLOAD_BYTES, MAX_VOTES_PER_UPDATE, InvalidPayload, Update

MC_PARTIES = {"REP": "GOP", "DEM": "DEM"}
SOS_PARTIES = {"R": "GOP", "D": "DEM"}


def parse_body(body: str | bytes) -> object:
    """Decode a feed body as JSON, refusing oversized or non-UTF-8 input."""
    if isinstance(body, bytes):
        if len(body) > MAX_PAYLOAD_BYTES:
            raise InvalidPayload(f"payload is {len(body)} bytes, over {MAX_PAYLOAD_BYTES}")
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidPayload(
                f"payload is not UTF-8: {exc.reason} at byte {exc.start}"
            ) from None
    if not isinstance(body, str):
        raise InvalidPayload(f"payload must be text, got {type(body).__name__}")
    if len(body) > MAX_PAYLOAD_BYTES:
        raise InvalidPayload(f"payload is {len(body)} characters, over {MAX_PAYLOAD_BYTES}")
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise InvalidPayload(f"payload is not valid JSON: {exc}") from None
    except RecursionError:
        # No feed nests more than a few levels; thousands of brackets are an
        # attack or garbage, and would fail the same way on every retry.
        raise InvalidPayload("payload is nested too deeply to be a feed") from None


def _field(obj: object, key: str, kind: type | tuple, where: str):
    if not isinstance(obj, dict):
        raise InvalidPayload(f"{where} must be an object")
    if key not in obj:
        raise InvalidPayload(f"{where} is missing {key!r}")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise InvalidPayload(f"{where}.{key} has the wrong type: {value!r:.60}")
    return value


def _votes(value: object, where: str) -> int:
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,12}", value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidPayload(f"{where} votes must be a whole number, got {value!r:.60}")
    if value < 0:
        raise InvalidPayload(f"{where} votes are negative: {value}")
    if value > MAX_VOTES_PER_UPDATE:
        raise InvalidPayload(f"{where} votes are absurd: {value} > {MAX_VOTES_PER_UPDATE}")
    return value


def _tick(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidPayload(f"{where} tick must be a non-negative integer, got {value!r:.60}")
    return value


def _time(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidPayload(f"{where} time must be a number, got {value!r:.60}")
    return float(value)


def _candidate(catalog: Catalog, source: str, key: str, where: str) -> Candidate:
    candidate = catalog.candidate_by_key(source, key)
    if candidate is None:
        race = catalog.race_of(source)
        raise InvalidPayload(f"{where} names unknown candidate {key!r} in race {race.id}")
    return candidate


def _check_party(candidate: Candidate, party: str, where: str) -> None:
    if party != candidate.party:
        raise InvalidPayload(
            f"{where} gives party {party!r} for candidate {candidate.id}, "
            f"catalog says {candidate.party!r}"
        )


def _update(source: str, tick: int, unit: int, candidate: Candidate, votes: int, at: float):
    return Update(source, tick, unit, candidate.race_id, candidate.id, votes, at)


def normalize_ap(payload: object, catalog: Catalog) -> list[Update]:
    """Normalize an AP feed: a list of flat rows with the original's field names."""
    if not isinstance(payload, list):
        raise InvalidPayload("ap payload must be a list of rows")
    race = catalog.race_of("ap")
    updates = []
    for i, row in enumerate(payload):
        where = f"ap row {i}"
        race_id = _field(row, "raceID", int, where)
        if race_id != race.id:
            raise InvalidPayload(f"{where} is for race {race_id}, ap reports race {race.id}")
        key = _field(row, "candidateID", int, where)
        candidate = _candidate(catalog, "ap", str(key), where)
        _check_party(candidate, _field(row, "party", str, where).upper(), where)
        updates.append(
            _update(
                "ap",
                _tick(_field(row, "tick", int, where), where),
                _tick(row.get("unit", 0), where),
                candidate,
                _votes(_field(row, "voteCount", (int, str), where), where),
                _time(_field(row, "emittedAt", (int, float), where), where),
            )
        )
    return updates


def normalize_mc(payload: object, catalog: Catalog) -> list[Update]:
    """Normalize a Maricopa County report: nested contest, report and choices."""
    race = catalog.race_of("mc")
    contest = _field(payload, "contest", dict, "mc")
    title = _field(contest, "title", str, "mc.contest")
    if title != race.name:
        raise InvalidPayload(f"mc contest {title!r} is not {race.name!r}")
    report = _field(payload, "report", dict, "mc")
    tick = _tick(_field(report, "seq", int, "mc.report"), "mc.report")
    at = _time(_field(report, "generated", (int, float), "mc.report"), "mc.report")
    updates = []
    for i, row in enumerate(_field(payload, "choices", list, "mc")):
        where = f"mc choice {i}"
        choice = _field(row, "choice", dict, where)
        candidate = _candidate(catalog, "mc", _field(choice, "name", str, where), where)
        party = _field(choice, "party", str, where)
        if party not in MC_PARTIES:
            raise InvalidPayload(f"{where} has unknown party {party!r}")
        _check_party(candidate, MC_PARTIES[party], where)
        unit = _tick(_field(row, "precinct", int, where), where)
        votes = _votes(_field(row, "delta", int, where), where)
        updates.append(_update("mc", tick, unit, candidate, votes, at))
    return updates


def normalize_sos(payload: object, catalog: Catalog) -> list[Update]:
    """Normalize a Secretary of State bulletin: a results list, counts as strings."""
    race = catalog.race_of("sos")
    office = _field(payload, "office", str, "sos")
    if office != race.name:
        raise InvalidPayload(f"sos office {office!r} is not {race.name!r}")
    tick = _tick(_field(payload, "sequence", int, "sos"), "sos")
    at = _time(_field(payload, "timestamp", (int, float), "sos"), "sos")
    updates = []
    for i, row in enumerate(_field(payload, "results", list, "sos")):
        where = f"sos result {i}"
        candidate = _candidate(catalog, "sos", _field(row, "candidate", str, where), where)
        party = _field(row, "partyCode", str, where)
        if party not in SOS_PARTIES:
            raise InvalidPayload(f"{where} has unknown party {party!r}")
        _check_party(candidate, SOS_PARTIES[party], where)
        unit = _tick(_field(row, "unit", int, where), where)
        votes = _votes(_field(row, "addedVotes", str, where), where)
        updates.append(_update("sos", tick, unit, candidate, votes, at))
    return updates


NORMALIZERS: dict[str, Callable[[object, Catalog], list[Update]]] = {
    "ap": normalize_ap,
    "mc": normalize_mc,
    "sos": normalize_sos,
}


def normalize(source: str, body: str | bytes, catalog: Catalog | None = None) -> list[Update]:
    """Parse and normalize one feed body from source, or raise InvalidPayload."""
    catalog = catalog or default_catalog()
    normalizer = NORMALIZERS.get(source) if isinstance(source, str) else None
    if normalizer is None or source not in catalog.sources:
        raise InvalidPayload(f"unknown source {source!r:.40}")
    updates = normalizer(parse_body(body), catalog)
    if not updates:
        raise InvalidPayload(f"{source} payload carries no updates")
    return updates
