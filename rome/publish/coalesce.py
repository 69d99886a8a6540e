"""Coalesce bursts of changes: each race is published at most once per interval.

Caesar asks for a publish after every commit, many times a second under load.
Every ask adds its races to the pending set and returns at once, but for one: the
ask that finds no publish scheduled waits until an interval has passed since the
last publish began, then publishes everything pending. Publishes never overlap
(a slower, older one would overwrite a newer one), so the races are read and
written at most once per interval, and a change waits at most about one interval
plus one publish.

A publisher that starts knows nothing of what changed before it: its first
publish is of every race (a process that died with races pending loses nothing).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

# The first publish of a process publishes every race: pending is EVERYTHING.
EVERYTHING = None


@dataclass
class Flush:
    """A publish the coalescer ran: the races asked for (None: all), and the commit times
    of the asks it answered."""

    race_ids: frozenset[int] | None
    committed: list[float]


class Coalescer:
    """Merge publish requests from any number of threads into one publish per interval."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval = interval
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # one publish at a time
        self._pending: set[int] | None = EVERYTHING
        self._committed: list[float] = []
        self._scheduled = False
        self._last_start: float | None = None

    def submit(self, race_ids: Collection[int], committed_at: float,
               publish: Callable[[Flush], object]) -> Flush | None:
        """Add races to publish; publish them (and all pending) now or after the interval if
        no other ask will, returning what was published; else None at once.

        If publish raises, its races go back to pending and the exception propagates (the
        ask is retried)."""
        with self._lock:
            if self._pending is not EVERYTHING:
                self._pending.update(race_ids)
            self._committed.append(committed_at)
            if self._scheduled:
                return None
            self._scheduled = True
        with self._flushing:
            with self._lock:
                last = self._last_start
            if last is not None:
                wait = last + self.interval - self.clock()
                if wait > 0:
                    self.sleep(wait)
            with self._lock:
                flush = Flush(None if self._pending is EVERYTHING else frozenset(self._pending),
                              self._committed)
                self._pending, self._committed = set(), []
                self._scheduled = False
                self._last_start = self.clock()
            try:
                publish(flush)
            except BaseException:
                with self._lock:
                    if flush.race_ids is EVERYTHING or self._pending is EVERYTHING:
                        self._pending = EVERYTHING
                    else:
                        self._pending.update(flush.race_ids)
                    self._committed[:0] = flush.committed
                raise
            return flush
