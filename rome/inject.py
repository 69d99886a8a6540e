"""Plan a stream of known updates for fault tests, and the totals it must produce.

The plan is pure data: the command line publishes it (rome/cli.py) and
`rome audit --expect` checks the tallies against its expectation.
"""

from __future__ import annotations

import base64
import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from rome.catalog import Catalog, default_catalog
from rome.sources import RENDERERS, Row


@dataclass(frozen=True)
class Message:
    """One feed body as the notekeeper task receives it."""

    source: str
    body: str
    encoding: str = "text"  # "base64" for raw bytes
    updates: int = 0  # how many valid updates it carries
    kind: str = "good"


def _bad_messages(catalog: Catalog) -> list[Message]:
    """One message of each kind of bad input the pipeline must reject."""
    ap_row = {"raceID": 1, "candidateID": 1, "party": "GOP", "voteCount": 5, "tick": 1,
              "emittedAt": 1.0}

    def ap(**changes):
        return json.dumps([{**ap_row, **changes}])

    def raw(data: bytes):
        return base64.b64encode(data).decode()

    return [
        Message("ap", "{not json", kind="invalid-json"),
        Message("ap", ap(voteCount="many"), kind="wrong-type"),
        Message("ap", json.dumps([{"raceID": 1, "party": "GOP"}]), kind="missing-field"),
        Message("cnn", ap(), kind="unknown-source"),
        Message("ap", ap(raceID=99), kind="unknown-race"),
        Message("ap", ap(candidateID=77), kind="unknown-candidate"),
        Message("ap", ap(voteCount=-40), kind="negative-votes"),
        Message("ap", ap(voteCount=10**13), kind="absurd-votes"),
        Message("ap", "[" + " " * 1_048_576 + "]", kind="one-megabyte"),
        Message("ap", raw(b'[{"raceID": 1, "last": "\xff\xfeTrump"}]'), "base64",
                kind="not-utf8"),
    ]


BAD_KINDS = ("invalid-json", "wrong-type", "missing-field", "unknown-source", "unknown-race",
             "unknown-candidate", "negative-votes", "absurd-votes", "one-megabyte", "not-utf8")


def plan_stream(
    updates: int,
    *,
    batch: int = 1,
    duplicate_rate: float = 0.0,
    shuffle: bool = False,
    bad: int = 0,
    first_tick: int = 0,
    seed: str = "inject",
    catalog: Catalog | None = None,
) -> tuple[list[Message], dict]:
    """Return the messages to publish and the expectation they must produce."""
    catalog = catalog or default_catalog()
    rng = random.Random(seed)
    sources = sorted(catalog.sources)
    messages: list[Message] = []
    totals: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
    remaining, index = updates, 0
    while remaining > 0:
        source = sources[index % len(sources)]
        tick = first_tick + index // len(sources)
        candidates = catalog.race_of(source).candidates
        rows = [Row(unit, rng.choice(candidates), rng.randint(0, 999))
                for unit in range(min(batch, remaining))]
        for row in rows:
            total = totals[(row.candidate.id, source)]
            total[0] += row.votes
            total[1] += 1
        body = RENDERERS[source](catalog, tick, rows, 1_700_000_000.0 + index)
        message = Message(source, body, updates=len(rows))
        messages.append(message)
        if rng.random() < duplicate_rate:
            messages.append(message)
        remaining -= len(rows)
        index += 1
    bad_messages = _bad_messages(catalog)
    for i in range(bad):
        messages.insert(rng.randrange(len(messages) + 1), bad_messages[i % len(bad_messages)])
    if shuffle:
        rng.shuffle(messages)
    expectation = {
        "updates": updates,
        "rejected": bad,
        "tallies": [
            {"candidate_id": c, "source_id": s, "votes": v, "updates": n}
            for (c, s), (v, n) in sorted(totals.items())
        ],
    }
    return messages, expectation


def write_expectation(path: Path, expectation: dict) -> None:
    path.write_text(json.dumps(expectation, indent=1) + "\n")


def read_expectation(path: Path) -> dict[tuple[int, str], tuple[int, int]]:
    """Read an expectation file into {(candidate_id, source_id): (votes, updates)}."""
    data = json.loads(path.read_text())
    return {(t["candidate_id"], t["source_id"]): (t["votes"], t["updates"])
            for t in data["tallies"]}
