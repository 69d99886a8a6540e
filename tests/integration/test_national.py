"""A national AP answer at real size through RabbitMQ and PostgreSQL (issue 20).

110,847 counts, a 14 MB file, taken the way the poller takes it (a claim check
on the archive): notekeeper cuts it into parts of whole races, no message on
the broker over 1 MB, and two caesar processes apply them to the right totals.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict

import pytest
from kombu import Connection
from sqlalchemy import select

from rome.feeds.formats import render_feed
from rome.feeds.national import national
from rome.feeds.snapshot import TOTAL
from rome.settings import load_settings
from rome.store.archive import Archive, record_fetch
from rome.store.models import RaceRow, TallyRow
from tests.helpers.support import wait_for

pytestmark = pytest.mark.slow

MB = 1_000_000


def caesar_messages(amqp_url: str) -> list[int]:
    """The sizes of the messages waiting for caesar, read without taking them."""
    sizes = []
    with Connection(amqp_url) as connection:
        channel = connection.channel()
        while (message := channel.basic_get("caesar.quorum", no_ack=False)) is not None:
            sizes.append(len(message.body))
        channel.close()  # unacked: every message goes back to the queue
    return sizes


def test_a_national_answer_goes_through_in_parts_under_one_megabyte(rome_on_rabbitmq, amqp_url):
    processes, database = rome_on_rabbitmq
    snapshot = national()
    body = render_feed("ap", snapshot)
    assert len(body) > 14 * MB and len(snapshot.counts) > 100_000
    settings = load_settings(processes.env)
    with database.Session.begin() as session:
        record_fetch(session, Archive(settings.archive_dir), source="ap", fmt="ap",
                     url="https://api.ap.org/v2/elections/2024-11-05", status=200, body=body,
                     fetched_at=time.time(), kind="feed")
    processes.worker("notekeeper", queues="notekeeper", concurrency=1)
    replayed = processes.run([sys.executable, "-m", "rome", "replay", "--archive",
                              "--source", "ap"])
    assert replayed.returncode == 0, replayed.stderr
    wait_for(lambda: "event=normalized" in processes.log("notekeeper"), 120,
             what="notekeeper to normalize the answer")
    sizes = wait_for(lambda: (s := caesar_messages(amqp_url)) and s, 30,
                     what="caesar's messages")
    assert len(sizes) > 1 and max(sizes) <= MB, sizes
    assert f"parts={len(sizes)}" in processes.log("notekeeper")

    processes.worker("caesar", queues="caesar", concurrency=2)
    want: dict[tuple[str, str], int] = defaultdict(int)
    for n in snapshot.counts:
        if n.unit.endswith(":state"):
            want[(n.race, n.candidate)] = n.votes

    def totals():
        with database.Session() as session:
            keys = dict(session.execute(select(RaceRow.id, RaceRow.key)).all())
            rows = session.scalars(select(TallyRow).where(
                TallyRow.vote_type == TOTAL, TallyRow.source_id == "ap", TallyRow.rank == 1))
            got = {(keys[t.race_id], t.candidate_id): t.votes for t in rows}
        return got if len(got) == len(want) else None

    got = wait_for(totals, 180, interval=1, what="every race's state totals")
    assert sorted(got.values()) == sorted(want.values())
