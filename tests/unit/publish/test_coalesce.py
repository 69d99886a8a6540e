"""Bursts coalesced: each race published at most once per interval, nothing lost."""

from __future__ import annotations

import threading
import time

import pytest

from rome.publish.coalesce import Coalescer
from rome.publish.lag import quantile, read_lags, record_lags
from tests.helpers.feeds_http import FakeClock


def test_the_first_publish_of_a_process_is_of_every_race():
    clock = FakeClock()
    coalescer = Coalescer(2.0, clock, clock.sleep)
    flushes = []
    first = coalescer.submit({1}, 1.0, flushes.append)
    assert first.race_ids is None  # everything: what changed before it started is unknown
    second = coalescer.submit({1, 2}, 2.0, flushes.append)
    assert second.race_ids == {1, 2} and clock.slept == [2.0]


def test_a_burst_while_a_publish_waits_is_published_once():
    coalescer = Coalescer(0.3)
    published: list = []
    starts: list[float] = []

    def publish(flush):
        starts.append(time.monotonic())
        published.append(flush)
        time.sleep(0.05)

    coalescer.submit({0}, 0.0, publish)  # the first: everything
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(
        coalescer.submit({i % 7 + 1}, float(i), publish))) for i in range(40)]
    for thread in threads:
        thread.start()
        time.sleep(0.01)
    for thread in threads:
        thread.join()
    # 40 asks over ~0.4 s: two or three publishes, every race in one of them, each
    # publish at least an interval after the one before.
    assert 2 <= len(published) <= 3
    assert set().union(*(f.race_ids for f in published[1:])) == set(range(1, 8))
    assert sorted(c for f in published for c in f.committed) == [0.0, *map(float, range(40))]
    assert all(b - a >= 0.3 - 0.01 for a, b in zip(starts, starts[1:], strict=False))
    assert sum(r is not None for r in results) == len(published) - 1


def test_a_failed_publish_puts_its_races_back():
    clock = FakeClock()
    coalescer = Coalescer(1.0, clock, clock.sleep)
    coalescer.submit(set(), 0.0, lambda flush: None)

    def fail(flush):
        raise OSError("disk full")

    with pytest.raises(OSError):
        coalescer.submit({3, 4}, 1.0, fail)
    done = coalescer.submit({5}, 2.0, lambda flush: None)
    assert done.race_ids == {3, 4, 5} and done.committed == [1.0, 2.0]


def test_lags_keep_the_newest_samples_and_their_quantiles(tmp_path):
    assert read_lags(tmp_path) == {"samples": [], "count": 0}
    record_lags(tmp_path, [0.1] * 98 + [1.0, 2.0])
    record_lags(tmp_path, [])
    lags = read_lags(tmp_path)
    assert lags["count"] == 100
    assert quantile(lags["samples"], 0.5) == 0.1
    assert quantile(lags["samples"], 0.99) == 1.0
    assert quantile([], 0.5) is None
    (tmp_path / ".publish-lag.json").write_text("{not json")
    assert read_lags(tmp_path)["count"] == 0
