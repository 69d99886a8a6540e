"""`rome bench polling`'s arithmetic: the busiest 60 s, means, percentiles, no-change answers."""

from __future__ import annotations

import random

import pytest

from rome.bench.common import BenchError
from rome.bench.polling import (
    first_visible,
    latency_summary,
    max_in_window,
    mean_per_minute,
    source_of_path,
    sources_file,
    unchanged_versions,
)
from rome.feeds.feedserver import FeedServer
from rome.feeds.poll.http import Limiter
from tests.helpers.paths import TESTS


def brute_force(times: list[float], window: float = 60.0) -> int:
    return max((sum(1 for u in times if t <= u < t + window) for t in times), default=0)


def test_max_in_window_counts_the_busiest_span_of_60_seconds():
    assert max_in_window([]) == 0
    assert max_in_window([5.0]) == 1
    # 60 s apart are two windows, as the limiter counts them (stamps after now - 60).
    assert max_in_window([0.0, 60.0]) == 1
    assert max_in_window([0.0, 59.999]) == 2
    assert max_in_window([61.0, 0.0, 1.0, 2.0, 59.0]) == 4  # unsorted: [0, 60) holds four
    assert max_in_window([61.0, 0.0, 1.0, 2.0, 60.0]) == 3  # 60 and 61 leave 0 behind
    rng = random.Random(19)
    for _ in range(200):
        times = [rng.uniform(0, 300) for _ in range(rng.randint(1, 40))]
        assert max_in_window(times) == brute_force(times)


def test_a_limiter_conforming_stream_never_counts_above_its_limit():
    # Rome's own limiter, asked as fast as it allows: the busiest 60 s holds exactly its limit.
    limiter, now, sent = Limiter(12), 1000.0, []
    while now < 1300.0:
        wait = limiter.wait(now)
        if wait <= 0:
            limiter.take(now)
            sent.append(now)
            now += 0.5
        else:
            now += wait
    assert max_in_window(sent) == 12
    assert max_in_window([*sent, sent[-1] + 0.1]) == 13  # and one more is seen


def test_mean_per_minute():
    assert mean_per_minute(30, 120.0) == 15.0
    assert mean_per_minute(7, 0.0) == 0.0


def test_latency_summary_in_milliseconds_nearest_rank():
    values = [ms / 1000 for ms in range(1, 101)]
    random.Random(1).shuffle(values)
    assert latency_summary(values) == {"n": 100, "p50_ms": 51.0, "p99_ms": 99.0,
                                       "max_ms": 100.0}
    assert latency_summary([]) == {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}


def test_no_change_and_first_visible():
    assert unchanged_versions(["a", "a", "b", "b", "b", "c"]) == 3
    assert unchanged_versions(["a"]) == 0
    # A version fetched twice counts from its first fetch; one never applied is left out.
    latencies = first_visible([(1, 10.0), (1, 9.5), (2, 11.0), (3, 12.0)], {1: 10.2, 2: 11.4})
    assert latencies == pytest.approx([0.7, 0.4])


def test_sources_and_requests_by_format():
    with FeedServer(simulated=True) as server:
        sources = sources_file(server, 5.0, 20)
    assert {s["id"]: (s["format"], s["requests_per_minute"], s["interval"]) for s in sources} \
        == {"ap": ("ap", 20, 5.0), "mc": ("clarity", 60, 5.0), "sos": ("nist", 30, 5.0)}
    assert source_of_path("/clarity/AZ/Maricopa/110000/current_ver.txt", sources) == "mc"
    assert source_of_path("/ap/v2/elections/2026-12-03", sources) == "ap"
    assert source_of_path("/nist/sos.json", sources) == "sos"
    assert source_of_path("/_feedserver/advance", sources) is None
    ap = sorted((TESTS / "fixtures" / "ap").glob("2016*.json"))
    with FeedServer(ap=ap) as server, pytest.raises(BenchError, match="one feed per format"):
        sources_file(server, 5.0, None)
