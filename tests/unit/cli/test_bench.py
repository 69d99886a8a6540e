"""`rome bench` takes a subcommand per benchmark; without one it runs the ingest benchmark."""

from __future__ import annotations

import json

import pytest

import rome.cli as cli
from rome.bench import ingest, slow_clients, web


def run_ingest_recorded(monkeypatch) -> list[dict]:
    calls = []

    def fake(settings, **options):
        calls.append(options)
        return {"rome_updates_per_s": 1}

    monkeypatch.setattr(ingest, "run_ingest", fake)
    return calls


def test_plain_bench_is_the_ingest_benchmark_with_the_same_options(monkeypatch, tmp_path,
                                                                    capsys):
    monkeypatch.setenv("ROME_DATA_DIR", str(tmp_path))
    calls = run_ingest_recorded(monkeypatch)
    options = ["--updates", "10", "--batch", "5", "--sweep", "1,5", "--wipe"]
    assert cli.main(["bench", *options]) == 0
    assert cli.main(["bench", "ingest", *options]) == 0
    assert calls[0] == calls[1]
    assert calls[0]["updates"] == 10 and calls[0]["sweep"] == [1, 5] and calls[0]["wipe"]
    # One JSON line each, as before the subcommands.
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == [{"rome_updates_per_s": 1}] * 2


def test_benchmarks_are_subcommands_not_mode_flags(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bench", "--growth"])
    assert exit_.value.code == 2
    assert "--growth" in capsys.readouterr().err


def test_slow_clients_hands_what_follows_the_double_dash_to_gunicorn(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(slow_clients, "run_slow_clients",
                        lambda args: seen.append(args) or {"answered": 1})
    assert cli.main(["bench", "slow-clients", "--slow", "4", "--", "-w", "2"]) == 0
    assert cli.main(["bench", "slow-clients"]) == 0
    assert seen[0].slow == 4 and seen[0].gunicorn == ["-w", "2"]
    assert seen[1].slow == 40 and seen[1].gunicorn == []


def test_a_benchmark_that_cannot_run_says_why_and_fails(monkeypatch, capsys):
    monkeypatch.setattr(web.shutil, "which", lambda name: None)
    assert cli.main(["bench", "web"]) == 1
    assert "rome bench web: wrk is not installed" in capsys.readouterr().err


WRK = """Running 10s test @ http://127.0.0.1:8083/api/races
  2 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.31ms    2.10ms  40.02ms   95.01%
    Req/Sec     1.24k   150.22     1.50k    71.00%
  Latency Distribution
     50%  812.00us
     75%    1.20ms
     90%    2.40ms
     99%   11.50ms
  24570 requests in 10.00s, 80.21MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   2457.00
Transfer/sec:      8.02MB
"""


def test_wrk_output_is_read_in_milliseconds():
    result = web.parse_wrk(WRK)
    assert result == {"rps": 2457.0, "p50_ms": 0.812, "p75_ms": 1.2, "p90_ms": 2.4,
                      "p99_ms": 11.5, "requests": 24570, "non_2xx": 3, "socket_errors": 0}
