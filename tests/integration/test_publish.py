"""The publish stage for real: caesar's commits reach the published folder through the
publish queue's worker, coalesced; a publish that keeps failing is retried, then recorded in
`rejected` like every other task's failure."""

from __future__ import annotations

import json
import sys

import pytest
from sqlalchemy import text

from rome.publish.lag import read_lags
from rome.read.listing import races_page
from tests.helpers.support import CELERY, wait_for

pytestmark = pytest.mark.slow

ROME = [sys.executable, "-m", "rome"]


def start_workers(processes, env=None):
    processes.start("worker", [*CELERY, "worker", "-Q", "notekeeper,caesar", "-n",
                               "pipeline@%h", "-c", "2", "-l", "info"], env=env)
    processes.start("publish", [*CELERY, "worker", "-Q", "publish", "-n", "publish@%h",
                                "-P", "threads", "-c", "4", "-l", "info"], env=env)
    for name in ("worker", "publish"):
        wait_for(lambda name=name: "ready." in processes.log(name), 60, what=name)


def test_caesars_commits_are_published_coalesced_with_their_lag(rome_on_rabbitmq, tmp_path):
    processes, database = rome_on_rabbitmq
    folder = tmp_path / "www"
    processes.env["ROME_PUBLISH_DIR"] = str(folder)
    processes.env["ROME_PUBLISH_INTERVAL"] = "1"
    start_workers(processes)
    inject = processes.run([*ROME, "inject", "--updates", "600", "--batch", "10",
                            "--rate", "200"], timeout=120)
    assert inject.returncode == 0, inject.stderr

    def published_as_recorded():
        with database.Session() as session:
            shown = {race["id"]: race["total_votes"] for race in races_page(session)["races"]
                     if race["total_votes"]}
        files = {}
        for race_id in shown:
            path = folder / "races" / f"{race_id}.json"
            if path.exists():
                files[race_id] = json.loads(path.read_bytes())["total_votes"]
        return shown if shown and files == shown else None

    wait_for(published_as_recorded, 60, interval=0.5, what="the files to show caesar's totals")
    lags = read_lags(folder)
    # 60 messages, each committed by caesar and asked to publish: far fewer publishes.
    log = processes.log("publish")
    publishes = log.count("event=published")
    assert lags["count"] >= 1 and 1 <= publishes < lags["count"], (publishes, lags["count"])
    assert max(lags["samples"]) < 10


def test_a_publish_that_keeps_failing_is_retried_then_recorded_as_rejected(
        rome_on_rabbitmq, tmp_path):
    processes, database = rome_on_rabbitmq
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the published folder should be")
    processes.env["ROME_PUBLISH_DIR"] = str(blocked)
    start_workers(processes)
    inject = processes.run([*ROME, "inject", "--updates", "20", "--batch", "20"], timeout=120)
    assert inject.returncode == 0, inject.stderr

    def reasons():
        with database.engine.connect() as conn:
            found = list(conn.scalars(text("SELECT reason FROM rejected ORDER BY id")))
        return found or None

    found = wait_for(reasons, 90, interval=1, what="the failed publish in rejected")
    assert any("rome.publish.races failed 3 times" in r for r in found), found
    assert "attempt=2" in processes.log("publish")  # retried before it was given up
    assert blocked.read_text() == "a file where the published folder should be"
