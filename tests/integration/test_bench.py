"""rome bench runs end to end and reports every figure (a smoke test, not a measurement)."""

from __future__ import annotations

import json
import sys

import pytest

from tests.helpers.support import Processes, reset_queues, rome_processes

pytestmark = pytest.mark.slow


def test_bench_reports_every_figure_and_draws_its_plots(tmp_path, pg_url, amqp_url):
    reset_queues(amqp_url)
    processes = rome_processes(tmp_path, pg_url, amqp_url)
    result = processes.run(
        [sys.executable, "-m", "rome", "bench", "--updates", "3000", "--batch", "300",
         "--naive-updates", "150", "--sweep", "10,300", "--freshness-seconds", "3",
         "--freshness-rate", "300", "--freshness-batch", "30", "--plots",
         str(tmp_path / "plots"), "--signing-rounds", "1", "--wipe"],
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("copy_rows_per_s", "naive_updates_per_s", "plain_updates_per_s",
                "rome_updates_per_s", "freshness_ms_p50", "freshness_ms_p99",
                "worker_rss_mb_max"):
        assert figures[key] > 0, key
    ratio = figures["rome_updates_per_s"] / figures["naive_updates_per_s"]
    assert figures["rome/naive"] == pytest.approx(ratio, rel=0.02)
    plain = figures["rome_updates_per_s"] / figures["plain_updates_per_s"]
    assert figures["rome/plain"] == pytest.approx(plain, rel=0.02)
    assert figures["freshness_ms_p50"] <= figures["freshness_ms_p99"]
    assert [row["batch"] for row in figures["by_batch"]] == [10, 300]
    assert set(figures["stage_us_per_update"]) == {"normalize", "encode", "sign", "decode",
                                                   "apply"}
    # Signed against unsigned workers and publishers, in alternating rounds of the same run.
    signing = figures["signing"]
    for path in ("rome", "naive"):
        signed, unsigned = signing[f"{path}_signed"], signing[f"{path}_unsigned"]
        assert len(signed) == len(unsigned) == 1 and min(signed + unsigned) > 0
        assert signing[f"{path}_signed/unsigned"] == [pytest.approx(signed[0] / unsigned[0],
                                                                   rel=0.02)]
    assert "round 1 unsigned" in result.stderr and "undecodable message" not in (
        tmp_path / "data" / "bench-worker.log").read_text()
    for name in ("throughput-by-batch.png", "freshness.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_refuses_to_erase_tallies_without_wipe(tmp_path, pg_url, amqp_url, database):
    from rome.store.tally import record_snapshots
    from tests.helpers.builders import race_snapshot

    if database.dialect != "postgresql":
        pytest.skip("runs once, against the PostgreSQL the bench uses")
    with database.Session.begin() as session:
        record_snapshots(session, [race_snapshot("ap", 1, {101: 5})])
    processes = Processes({"ROME_DATABASE_URL": pg_url, "ROME_BROKER_URL": amqp_url,
                           "ROME_DATA_DIR": str(tmp_path / "data")}, tmp_path)
    result = processes.run([sys.executable, "-m", "rome", "bench", "--updates", "10"])
    assert result.returncode == 1
    assert "--wipe" in result.stderr


def test_bench_scale_measures_each_number_of_processes(tmp_path, pg_url, amqp_url):
    reset_queues(amqp_url)
    result = rome_processes(tmp_path, pg_url, amqp_url).run(
        [sys.executable, "-m", "rome", "bench", "scale", "--processes", "1,2", "--runs", "1",
         "--updates", "2000", "--batch", "200", "--plots", str(tmp_path / "plots"), "--wipe"],
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert [row["processes"] for row in figures["scales"]] == [1, 2]
    for row in figures["scales"]:
        assert row["updates_per_s"] > 0
        cpu = row["cpu_us_per_update"]
        # Every party that must have worked did: parsing, applying, storing, brokering.
        assert cpu["notekeeper"] > 0 and cpu["caesar"] > 0 and cpu["postgresql"] > 0
        assert cpu["rabbitmq"] > 0
    assert figures["speedup"]["1"] == 1.0
    assert (tmp_path / "plots" / "scale.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_plain_baseline_task_is_not_part_of_romes_workers():
    """Only the bench's workers load it (`-I workers.naive`); Rome's own never run it."""
    from workers import app

    assert "workers.naive" not in app.conf.include
    assert "rome.bench.plain_count" not in app.tasks


def test_bench_slow_clients_measures_the_web_under_slow_clients(tmp_path):
    processes = Processes({"ROME_DATA_DIR": str(tmp_path / "data")}, tmp_path)
    result = processes.run(
        [sys.executable, "-m", "rome", "bench", "slow-clients", "--slow", "3", "--seconds", "2",
         "--interval", "0.5", "--", "-c", "python:web.gunicorn_conf", "-w", "1"],
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["gunicorn"] == ["-c", "python:web.gunicorn_conf", "-w", "1"]
    assert figures["slow_clients"] == 3
    assert figures["answered"] > 0 and figures["failed"] == 0
    assert 0 < figures["quiet_median_ms"] and 0 < figures["attacked_median_ms"]


def test_bench_polling_polls_a_short_night_and_reports_every_source(tmp_path, pg_url, amqp_url):
    """`rome bench polling` on RabbitMQ and PostgreSQL: a 40 s simulated night, polled."""
    reset_queues(amqp_url)
    processes = rome_processes(tmp_path, pg_url, amqp_url)
    result = processes.run(
        [sys.executable, "-m", "rome", "bench", "polling", "--minutes", "0.67",
         "--poll-interval", "2", "--wipe"],
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["pipeline"] == "rabbitmq+postgresql"
    assert set(figures["sources"]) == {"ap", "mc", "sos"}
    for sid, source in figures["sources"].items():
        # Every 2 s asked; the limiter holds AP (12 a minute) and Clarity (60) to theirs.
        assert 0 < source["requests_max_in_60s"] <= source["requests_per_minute_limit"], sid
        assert source["requests"] >= source["requests_max_in_60s"], sid
        assert sum(n for k, n in source["polls"].items() if k != "skipped") > 0, sid
        latency = source["poll_to_visible"]
        assert 0 < latency["n"] <= source["answers_sent_on"], sid
        assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"], sid
    # AP asks more often than its limit allows: some polls are held back.
    assert figures["sources"]["ap"]["polls"].get("limited", 0) > 0


def bench_national(tmp_path, pg_url, amqp_url, *options: str) -> dict:
    """Run `rome bench national --wipe` with options; return its one measured size."""
    reset_queues(amqp_url)
    result = rome_processes(tmp_path, pg_url, amqp_url).run(
        [sys.executable, "-m", "rome", "bench", "national", *options, "--wipe"], timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    [size] = json.loads(result.stdout.strip().splitlines()[-1])["sizes"]
    return size


def test_bench_national_takes_a_national_answer_and_pays_for_what_changed(tmp_path, pg_url,
                                                                         amqp_url):
    size = bench_national(tmp_path, pg_url, amqp_url, "--races-per-state", "2",
                          "--changed-versions", "1", "--clarity-counties", "0")
    assert size["feed"] == "ap" and size["messages_to_notekeeper"] == [1, 1, 1]
    counts = size["counts"]
    # Fresh: every row; 1 % changed: that 1 %; the same figures again: none.
    assert size["rows_written"] == [counts, round(counts * 0.01), 0]
    assert size["parts"] > 1 and size["largest_message_bytes"] <= 1_000_000
    assert size["fetch_to_visible_s"]["fresh"] > 0 and size["apply_s"]["fresh"] > 0
    assert set(size["peak_rss_mb"]) == {"notekeeper", "caesar"}
    assert size["database_alone_rows_per_s"] > 0


def test_bench_national_takes_a_clarity_state_county_by_county(tmp_path, pg_url, amqp_url):
    state = bench_national(tmp_path, pg_url, amqp_url, "--races-per-state", "",
                           "--clarity-counties", "3", "--changed-versions", "2")
    counts = state["counts"]
    assert state["feed"] == "clarity" and state["files"] == 3 and state["counties"] == 3
    assert state["precincts"] == round(2_600 * 3 / 159)
    # Each county file the poller would fetch: all of them fresh, those whose figures
    # moved for 1 % changed, every county republished for the identical one; sent on as
    # the poller does, up to 16 to a claim check, and their parts to caesar together.
    fresh, *one_percent, identical = state["fetches"]
    assert fresh == identical == 3 and all(1 <= n <= 3 for n in one_percent)
    assert state["messages_to_notekeeper"] == [1] * 4 and state["messages_to_caesar"] == 1
    # Rows written follow the change: every count, then about 1 % of them, then none.
    assert state["rows_written"] == state["counts_changed"]
    assert state["counts_changed"][0] == counts and state["counts_changed"][-1] == 0
    assert all(round(counts * 0.01) <= n < round(counts * 0.01) + 4
               for n in state["counts_changed"][1:-1])
    assert len(state["fetch_to_visible_s"]["changed_1pct"]) == 2
    assert state["fetch_to_visible_s"]["fresh"] > 0 and state["apply_s"]["fresh"] > 0
    assert 0 < state["largest_message_bytes"] <= 1_000_000 and state["parts"] >= 3
    assert set(state["peak_rss_mb"]) == {"notekeeper", "caesar"}
    assert state["database_alone_rows_per_s"] > 0
