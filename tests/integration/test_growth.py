"""Ingest's cost stays flat as the night grows, and `rome bench growth` measures it."""

from __future__ import annotations

import json
import sys

import pytest
from sqlalchemy import text

from rome.store.tally import record_snapshots
from tests.helpers.builders import race_snapshot
from tests.helpers.support import rome_processes

COUNTIES = [f"County {n:03d}" for n in range(250)]


def test_current_counts_keep_their_size_as_new_versions_replace_them(database):
    """Updates find room on their own page (HOT), so no vacuum is needed to stop the growth."""
    if database.dialect != "postgresql":
        pytest.skip("page layout is PostgreSQL's")

    def report(version: int):
        below = {c: {cid: version * 10 + i % 7 for cid in (101, 102, 103, 104)}
                 for i, c in enumerate(COUNTIES)}
        with database.Session.begin() as session:
            record_snapshots(session, [race_snapshot("ap", version, {101: version},
                                                     below=below)])

    def pages() -> int:
        with database.Session() as session:
            return session.scalar(text(
                "SELECT pg_relation_size('current_counts') / current_setting('block_size')::int"))

    for version in range(1, 11):  # the first versions settle the rows into their pages
        report(version)
    before = pages()
    for version in range(11, 51):  # 40 versions of 1,001 counts: 40,040 updates
        report(version)
    # Without room on the page, most updates would move their row to a new page at the
    # table's end (about 8 pages a version here, 320 in all); only vacuum would stop that.
    assert pages() - before < 40


@pytest.mark.slow
def test_bench_growth_reports_every_step_and_draws_its_plot_and_the_probes_read_it(
        tmp_path, pg_url, amqp_url):
    processes = rome_processes(tmp_path, pg_url, amqp_url)
    result = processes.run(
        [sys.executable, "-m", "rome", "bench", "growth", "--rows", "60000",
         "--steps", "0,60000", "--units", "50", "--batch", "200",
         "--readers", "2", "--read-rounds", "3", "--plots", str(tmp_path / "plots"), "--wipe"],
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    steps = figures["steps"]
    assert len(steps) == 2 and steps[-1]["history_rows"] >= 60000 > steps[0]["history_rows"]
    for step in steps:
        assert step["apply_rows_per_s"] > 0 and step["apply_rows_per_s_empty"] > 0
        assert step["apply_plan"]["tables"]["history"]["hit"] > 0
        assert set(step["reads_ms"]) == {"/livez", "/api/races", "/race", "/race/{race}",
                                         "/race/{race}/chart.svg",
                                         "/api/races/{race}/history?since={since}"}
        assert all(0 < v["p50"] <= v["p99"] for v in step["reads_ms"].values())
        assert all(0 < n <= 240 for n in step["history_points"].values())
    assert (tmp_path / "plots" / "growth.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The probes read the database the growth bench filled.
    result = processes.run([sys.executable, "-m", "rome", "bench", "probe", "history", pg_url],
                           timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    history = json.loads(result.stdout)["history"]
    assert history["same_answers"] is True and history["history_rows"] >= 60000
    result = processes.run([sys.executable, "-m", "rome", "bench", "probe", "keys", pg_url],
                           timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(json.loads(result.stdout)["keys_upsert_ms"]) == {"text", "smallint"}
