"""Plan a stream of known snapshots for fault tests and benchmarks, and the tallies it must produce.

Each source sends a run of versions of its feed, in its own format; each
version carries cumulative figures for part of a fixed pool of units (so
later versions overwrite earlier ones' keys, as a real night does), now and
then lower than before (a correction), and a top-level row per candidate
that is the sum of everything the source has said so far. Whatever the order
and however often the messages arrive, the newest version of each count must
win: the expectation is that final state. The plan is pure data: the command
line publishes it (rome/cli/) and `rome audit --expect` checks it.
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass
from pathlib import Path

from rome.feeds.catalog import Catalog, default_catalog
from rome.feeds.formats import render_feed
from rome.feeds.simulator import candidate_ref, race_ref, stamp, top_of, unit_refs
from rome.feeds.snapshot import LEVEL_RANK, Count, Snapshot


@dataclass(frozen=True)
class Message:
    """One feed body as the notekeeper task receives it."""

    source: str
    body: str
    encoding: str = "text"  # "base64" for raw bytes
    version: int | None = None
    format: str | None = None  # for a source the catalog does not name
    counts: int = 0  # how many valid counts it carries
    feed_version: int | None = None  # the snapshot's version, whether or not it goes along
    kind: str = "good"


def plan_snapshots(
    counts: int,
    *,
    batch: int = 1,
    start: int = 1,
    seed: str = "inject",
    units: int = 0,
    top: bool = True,
    catalog: Catalog | None = None,
) -> tuple[list[Snapshot], dict[tuple, int]]:
    """Return snapshots carrying `counts` unit-level counts in all, and the final tallies.

    Units come from a pool of `units` per source (default: enough for two
    batches), so successive versions revisit the same keys. With top, each
    snapshot also carries the source's top-level row per candidate. The n-th
    snapshot of a source is stamped `start + n` seconds since 1970, versioned
    by its format's rule.
    """
    catalog = catalog or default_catalog()
    rng = random.Random(seed)
    sources = sorted(catalog.sources)
    state: dict[str, dict[tuple[str, str], int]] = {s: {} for s in sources}
    snapshots: list[Snapshot] = []
    remaining, index = counts, 0
    while remaining > 0:
        source = sources[index % len(sources)]
        fmt = catalog.sources[source].format
        race = catalog.races_of(source)[0]
        feed_key = race.keys[source]
        candidates = race.candidates
        per_unit = len(candidates)
        pool = units or max(2, 2 * -(-batch // per_unit))
        rows = min(batch, remaining)
        run = index // len(sources)
        first_unit = (run * -(-rows // per_unit)) % pool
        numbers = sorted({(first_unit + i // per_unit) % pool for i in range(rows)})
        top_unit, below = unit_refs(fmt, *top_of(source), [(n, f"Unit {n:05d}") for n in numbers])
        unit_of = dict(zip(numbers, below, strict=True))
        figures = state[source]
        row_counts = []
        for i in range(rows):
            unit = unit_of[(first_unit + i // per_unit) % pool].key
            candidate = candidates[i % per_unit].keys[source]
            old = figures.get((unit, candidate), 0)
            # Now and then a figure goes down: a correction, which must win too.
            votes = max(0, old - rng.randint(1, 50)) if old and rng.random() < 0.05 \
                else old + rng.randint(0, 999)
            figures[(unit, candidate)] = votes
            row_counts += _typed(fmt, feed_key, unit, candidate, votes)
        used = {n.unit for n in row_counts}
        # Clarity always gives the contest's own total; the others when asked.
        for candidate in candidates if top or fmt == "clarity" else ():
            mine = [v for (_, c), v in figures.items() if c == candidate.keys[source]]
            row_counts += _typed(fmt, feed_key, top_unit.key, candidate.keys[source], sum(mine),
                                 sum(v // 3 for v in mine))
        version, feed_at = stamp(fmt, start + run, 1.0)
        snapshots.append(Snapshot(
            source=source, format=fmt, version=version, feed_at=feed_at,
            races=(race_ref(fmt, race, feed_key),),
            units=(top_unit, *(u for u in below if u.key in used)),
            candidates=tuple(candidate_ref(fmt, source, feed_key, c) for c in candidates),
            counts=tuple(row_counts),
        ))
        remaining -= rows
        index += 1
    return snapshots, expected_tallies(snapshots, catalog)


def _typed(fmt: str, race: str, unit: str, candidate: str, votes: int,
           early: int | None = None) -> list[Count]:
    """Return a count, split by vote type where the format always has types (Clarity):
    a third early (or `early`, for a top row: the sum of its units'), the rest on the day."""
    if fmt != "clarity":
        return [Count(race, unit, candidate, votes)]
    early = votes // 3 if early is None else early
    return [Count(race, unit, candidate, votes), Count(race, unit, candidate, early, "early"),
            Count(race, unit, candidate, votes - early, "election_day")]


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
    # Clarity's version is its folder's number, not in the file: it goes along.
    version = snapshot.version if snapshot.format == "clarity" else None
    return Message(snapshot.source, body, version=version, counts=len(snapshot.counts),
                   feed_version=snapshot.version)


def plan_stream(
    counts: int,
    *,
    batch: int = 1,
    duplicate_rate: float = 0.0,
    shuffle: bool = False,
    bad: int = 0,
    start: int = 1,
    seed: str = "inject",
    units: int = 0,
    top: bool = True,
    catalog: Catalog | None = None,
) -> tuple[list[Message], dict]:
    """Return the messages to publish and the expectation they must produce."""
    catalog = catalog or default_catalog()
    rng = random.Random(f"{seed}:order")
    snapshots, tallies = plan_snapshots(counts, batch=batch, start=start,
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

