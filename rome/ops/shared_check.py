"""Run a check at most once per period for every thread of a process, one run at a time.

An unauthenticated /healthz that opens a broker connection per request lets anyone
make the broker do work at the rate they ask (the probe of issue 23: 20 clients, 10 s,
about 1,900 AMQP connections). The answer is a few seconds old at most instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SharedCheck(Generic[T]):
    """Return check()'s last answer while younger than `every` s; else run it once for all."""

    def __init__(self, check: Callable[[], T], every: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self.check = check
        self.every = every
        self.clock = clock
        self._answer: T | None = None
        self._at: float | None = None  # clock() when the last check ended
        self._running = False
        self._cond = threading.Condition()

    def get(self) -> T:
        """The last answer if fresh; else run the check, or wait for the one in flight."""
        with self._cond:
            while True:
                if self._at is not None and self.clock() - self._at < self.every:
                    return self._answer  # type: ignore[return-value]
                if not self._running:
                    self._running = True
                    break
                # Another thread is checking: its answer is fresh for us too.
                self._cond.wait()
        try:
            answer = self.check()
        except BaseException:
            with self._cond:  # let a waiting thread try in its turn
                self._running = False
                self._cond.notify_all()
            raise
        with self._cond:
            self._answer, self._at, self._running = answer, self.clock(), False
            self._cond.notify_all()
        return answer
