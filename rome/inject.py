"""Plan a stream of known snapshots for fault tests and benchmarks, and the tallies it must produce.

Each source sends a run of versions of its feed, in its own format; each
version carries cumulative figures for part of a fixed pool of units (so
later versions overwrite earlier ones' keys, as a real night does), now and
then lower than before (a correction), and a top-level row per candidate
that is the sum of everything the source has said so far. Whatever the order
and however often the messages arrive, the newest version of each count must
win: the expectation is that final state. The plan is pure data: the command
line publishes it (rome/cli.py) and `rome audit --expect` checks it.
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass
from pathlib import Path

from rome.catalog import Catalog, default_catalog
from rome.formats import render_feed
from rome.snapshot import LEVEL_RANK, CandidateRef, Count, RaceRef, Snapshot, UnitRef


@dataclass(frozen=True)
class Message:
    """One feed body as the notekeeper task receives it."""

    source: str
    body: str
    encoding: str = "text"  # "base64" for raw bytes
    version: int | None = None
    format: str | None = None  # for a source the catalog does not name
    counts: int = 0  # how many valid counts it carries
    kind: str = "good"


def _levels(source: str) -> tuple[str, str]:
    return ("county", "precinct") if source == "mc" else ("state", "county")


def plan_snapshots(
    counts: int,
    *,
    batch: int = 1,
    first_version: int = 1,
    seed: str = "inject",
    units: int = 0,
    top: bool = True,
    catalog: Catalog | None = None,
) -> tuple[list[Snapshot], dict[tuple, int]]:
    """Return snapshots carrying `counts` unit-level counts in all, and the final tallies.

    Units come from a pool of `units` per source (default: enough for two
    batches), so successive versions revisit the same keys. With top, each
    snapshot also carries the source's top-level row per candidate.
    """
    catalog = catalog or default_catalog()
    rng = random.Random(seed)
    sources = sorted(catalog.sources)
    state: dict[str, dict[tuple[str, str], int]] = {s: {} for s in sources}
    snapshots: list[Snapshot] = []
    remaining, index = counts, 0
    while remaining > 0:
        source = sources[index % len(sources)]
        race = catalog.races_of(source)[0]
        top_level, unit_level = _levels(source)
        # The same top unit the simulated feed reports, so the two mix as one feed would.
        top_name = race.state if top_level == "state" else "Maricopa"
        top_unit = UnitRef(top_name, top_name, top_level)
        candidates = race.candidates
        pool = units or max(2, 2 * -(-batch // len(candidates)))
        rows = min(batch, remaining)
        run = index // len(sources)
        first_unit = (run * -(-rows // len(candidates))) % pool
        figures = state[source]
        unit_refs, row_counts = {}, []
        for i in range(rows):
            unit = f"U{(first_unit + i // len(candidates)) % pool:05d}"
            candidate = candidates[i % len(candidates)]
            key = (unit, candidate.keys[source])
            old = figures.get(key, 0)
            # Now and then a figure goes down: a correction, which must win too.
            votes = max(0, old - rng.randint(1, 50)) if old and rng.random() < 0.05 \
                else old + rng.randint(0, 999)
            figures[key] = votes
            unit_refs[unit] = UnitRef(unit, f"Unit {unit}", unit_level, top_name)
            row_counts.append(Count(race.keys[source], unit, candidate.keys[source], votes))
        for candidate in candidates if top else ():
            total = sum(v for (_, c), v in figures.items() if c == candidate.keys[source])
            row_counts.append(Count(race.keys[source], top_name, candidate.keys[source], total))
        version = first_version + run
        snapshots.append(Snapshot(
            source=source, format=catalog.sources[source].format, version=version,
            feed_at=1_700_000_000.0 + run,
            races=(RaceRef(race.keys[source], race.name, race.state, race.office),),
            units=(top_unit, *unit_refs.values()),
            candidates=tuple(CandidateRef(race.keys[source], c.keys[source], c.first, c.last,
                                          c.party) for c in candidates),
            counts=tuple(row_counts),
        ))
        remaining -= rows
        index += 1
    return snapshots, expected_tallies(snapshots, catalog)


def expected_tallies(snapshots: list[Snapshot], catalog: Catalog) -> dict[tuple, int]:
    """Apply newest-wins in memory and sum per (race, source, candidate, vote type, level)."""
    newest: dict[tuple, tuple[int, int]] = {}
    for s in snapshots:
        ranks = {u.key: LEVEL_RANK[u.level] for u in s.units}
        for n in s.counts:
            key = (catalog.race_key(s.source, n.race), s.source,
                   catalog.candidate_key(s.source, n.race, n.candidate), n.vote_type,
                   ranks[n.unit], n.unit)
            if key not in newest or newest[key] < (s.version, n.votes):
                newest[key] = (s.version, n.votes)
    tallies: dict[tuple, int] = {}
    for key, (_, votes) in newest.items():
        tallies[key[:5]] = tallies.get(key[:5], 0) + votes
    return tallies


def _bad_messages(good: Message) -> list[Message]:
    """One message of each kind of bad input the pipeline must reject."""
    ap = json.loads(good.body)

    def mutate(change) -> str:
        body = json.loads(json.dumps(ap))
        change(body)
        return json.dumps(body)

    def first_candidate(body):
        return body["races"][0]["reportingUnits"][0]["candidates"][0]

    def raw(data: bytes):
        return base64.b64encode(data).decode()

    laughs = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
              '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
              '<ElectionResult>&lol2;</ElectionResult>')
    external = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                '<ElectionResult>&x;</ElectionResult>')
    return [
        Message("ap", "{not json", kind="invalid-json"),
        Message("ap", mutate(lambda b: first_candidate(b).update(voteCount="many")),
                kind="wrong-type"),
        Message("ap", mutate(lambda b: b["races"][0].pop("raceID")), kind="missing-field"),
        Message("cnn", good.body, kind="unknown-source"),
        Message("ap", mutate(lambda b: first_candidate(b).update(voteCount=-40)),
                kind="negative-votes"),
        Message("ap", mutate(lambda b: first_candidate(b).update(voteCount=10**13)),
                kind="absurd-votes"),
        Message("ap", "[" * 100_000 + "]" * 100_000, kind="nested-deep"),
        Message("ap", raw(b'{"races": [{"raceID": "\xff\xfe"}]}'), "base64", kind="not-utf8"),
        Message("mc", "<ElectionResult><Contest", version=1, kind="malformed-xml"),
        Message("mc", laughs, version=1, kind="xml-entity-expansion"),
        Message("mc", external, version=1, kind="xml-external-entity"),
        Message("sos", json.dumps({"@type": "ElectionResults.ElectionReport"}),
                kind="fails-schema"),
    ]


BAD_KINDS = ("invalid-json", "wrong-type", "missing-field", "unknown-source", "negative-votes",
             "absurd-votes", "nested-deep", "not-utf8", "malformed-xml", "xml-entity-expansion",
             "xml-external-entity", "fails-schema")


def to_message(snapshot: Snapshot) -> Message:
    """Render a snapshot in its source's format, as that source would publish it."""
    body = render_feed(snapshot.format, snapshot).decode()
    # The version goes along, as a Clarity feed's version folder does.
    return Message(snapshot.source, body, version=snapshot.version,
                   counts=len(snapshot.counts))


def plan_stream(
    counts: int,
    *,
    batch: int = 1,
    duplicate_rate: float = 0.0,
    shuffle: bool = False,
    bad: int = 0,
    first_version: int = 1,
    seed: str = "inject",
    units: int = 0,
    top: bool = True,
    catalog: Catalog | None = None,
) -> tuple[list[Message], dict]:
    """Return the messages to publish and the expectation they must produce."""
    catalog = catalog or default_catalog()
    rng = random.Random(f"{seed}:order")
    snapshots, tallies = plan_snapshots(counts, batch=batch, first_version=first_version,
                                        seed=seed, units=units, top=top, catalog=catalog)
    messages: list[Message] = []
    for snapshot in snapshots:
        message = to_message(snapshot)
        messages.append(message)
        if rng.random() < duplicate_rate:
            messages.append(message)
    if bad:
        good_ap = next(m for m in messages if m.source == "ap")
        bad_messages = _bad_messages(good_ap)
        for i in range(bad):
            messages.insert(rng.randrange(len(messages) + 1), bad_messages[i % len(bad_messages)])
    if shuffle:
        rng.shuffle(messages)
    expectation = {
        "counts": counts,
        "messages": len(snapshots),
        "rows": sum(len(s.counts) for s in snapshots),
        "rejected": bad,
        "tallies": [
            {"race": k[0], "source": k[1], "candidate": k[2], "vote_type": k[3], "rank": k[4],
             "votes": v}
            for k, v in sorted(tallies.items())
        ],
    }
    return messages, expectation


def write_expectation(path: Path, expectation: dict) -> None:
    path.write_text(json.dumps(expectation, indent=1) + "\n")


def read_expectation(path: Path) -> dict[tuple, int]:
    """Read an expectation file into {(race, source, candidate, vote type, rank): votes}."""
    data = json.loads(path.read_text())
    return {(t["race"], t["source"], t["candidate"], t["vote_type"], t["rank"]): t["votes"]
            for t in data["tallies"]}

