"""`rome poll ID`, `rome sources` and `rome replay --archive`, against a real HTTP server."""

from __future__ import annotations

import json
import time

import pytest

from rome.cli import main
from rome.feeds.poll.http import Fetcher, FetchError
from rome.feeds.sources_file import SourceSpec
from tests.helpers.feeds_http import LoopbackServer, ap_answer, ap_race


@pytest.fixture
def server():
    url = "/v2/elections/2024-11-05?format=json&level=state"
    box = LoopbackServer([])
    box.url = url
    box.answers += [
        ap_answer([ap_race("1", "AZ", {"a": 10, "b": 20})], "2024-11-06T03:00:00Z",
                  f"{box.base}{url}&minDateTime=2024-11-06T03:00:00Z"),
        ap_answer([], "2024-11-06T03:00:05Z", f"{box.base}{url}&minDateTime=2024-11-06T03:00:05Z"),
    ]
    yield box
    box.close()


@pytest.fixture
def env(tmp_path, monkeypatch, server):
    for name in ("ROME_DATABASE_URL", "ROME_BROKER_URL", "ROME_ARCHIVE_DIR", "ROME_SOURCES"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "s.toml").write_text(
        f'[[source]]\nid = "live"\nformat = "ap"\nurl = "{server.base}{server.url}"\n'
        'interval = 5\napi_key_env = "AP_TEST_KEY"\n')
    monkeypatch.setenv("ROME_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ROME_SOURCES", str(tmp_path / "s.toml"))
    monkeypatch.setenv("AP_TEST_KEY", "cli-secret")


def test_rome_poll_runs_one_cycle_now_and_rome_sources_shows_it(env, server, capsys):
    assert main(["poll", "live"]) == 0
    out = capsys.readouterr().out
    assert "live: 1 request(s), HTTP status 200, 1 new feed body, 2 count(s) applied" in out
    assert main(["poll", "live"]) == 0
    assert "0 new feed bodies" in capsys.readouterr().out
    # The second request was the first answer's nextrequest, verbatim, with the key.
    assert server.seen[1][0].endswith("&minDateTime=2024-11-06T03:00:00Z")
    assert server.seen[1][1]["x-api-key"] == "cli-secret"
    assert main(["sources"]) == 0
    shown = capsys.readouterr().out
    assert "live (ap, every 5 s" in shown and "HTTP status 200" in shown
    assert "2 requests" in shown and "cli-secret" not in shown
    assert main(["sources", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["polls"] == {"200": 2}
    assert main(["replay", "--archive", "--source", "live", "--dry-run"]) == 0
    listed = capsys.readouterr().out.splitlines()
    # The second answer had no races: kept as "empty", never replayed.
    assert len(listed) == 1 and "(feed, version 2024-11-06T03:00:00Z)" in listed[0]
    assert main(["replay", "--archive", "--source", "live", "--dry-run",
                 "--since", "2999-01-01T00:00:00Z"]) == 1


def test_rome_poll_names_an_unknown_source(env, capsys):
    assert main(["poll", "nope"]) == 2
    assert "no source 'nope' in ROME_SOURCES (it has: live)" in capsys.readouterr().err


def test_a_slow_answer_past_the_read_timeout_is_an_error_in_time(server):
    server.stall = 6.0
    spec = SourceSpec(id="live", format="ap", url=server.base + server.url, interval=5,
                      name="x", requests_per_minute=10)
    started = time.monotonic()
    with Fetcher(spec, deadline=30, read_timeout=0.5) as fetcher, \
            pytest.raises(FetchError, match="timed out"):
        fetcher.get(spec.url)
    assert time.monotonic() - started < 4.5
    # The poll's deadline bounds a request too, whatever the read timeout.
    started = time.monotonic()
    with Fetcher(spec, deadline=0.7) as fetcher, pytest.raises(FetchError):
        fetcher.get(spec.url)
    assert time.monotonic() - started < 4.5


def test_rome_demo_refuses_a_bad_sources_file_before_starting_anything(env, tmp_path, capsys):
    (tmp_path / "s.toml").write_text('[[source]]\nid = "live"\nformat = "ap"\n')
    assert main(["demo"]) == 2
    assert "s.toml:1: [[source]] has no 'url'" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


def test_the_demo_runs_a_poll_worker_beside_the_others(tmp_path):
    from rome.ops.demo import plan
    from rome.settings import load_settings

    services = {s.name: s.argv for s in plan(load_settings({"ROME_DATA_DIR": str(tmp_path)}),
                                             web_port=1, flower_port=2, single_worker=False)}
    poll = services["poll"]
    assert poll[poll.index("-Q") + 1] == "poll" and poll[poll.index("-c") + 1] == "4"
    single = plan(load_settings({"ROME_DATA_DIR": str(tmp_path)}), web_port=1, flower_port=2,
                  single_worker=True)[0].argv
    assert "poll" in single[single.index("-Q") + 1].split(",")
