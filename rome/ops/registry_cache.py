"""Keep the last known list of workers, refreshed in the background, so /registry answers at once.

Asking Celery's workers who they are is a broadcast that waits out its timeout
(about a second per question). A request must not: it reads what the last
refresh found, with the time it was found, and a thread refreshes it every few
seconds while someone keeps asking.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger("rome.web")


@dataclass(frozen=True)
class Known:
    """What the last refreshes found: workers (None until one succeeded), when, and any error."""

    workers: list[dict] | None
    as_of: float | None  # time.time() when the refresh that found workers began
    error: str | None  # why the latest refresh failed, if it did


class RegistryCache:
    """Serve fetch()'s last answer at once; refresh it every `every` s while it is asked for."""

    def __init__(self, fetch: Callable[[], list[dict]], *, every: float = 5.0,
                 max_age: float = 30.0, idle: float = 300.0, wait: float = 10.0):
        self.fetch = fetch
        self.every = every  # seconds between refreshes while asked
        self.max_age = max_age  # older than this, a request waits for a refresh
        self.idle = idle  # unasked this long, the thread stops (a request restarts it)
        self.wait = wait  # the longest a request waits for a refresh
        self._known = Known(None, None, None)
        self._refreshes = 0
        self._refreshing = False
        self._stopped = False
        self._asked = time.monotonic()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._wake = threading.Event()

    def start(self) -> None:
        """Start refreshing in the background now (as an app does when it starts)."""
        with self._cond:
            self._asked = time.monotonic()
            self._ensure_thread()

    def stop(self) -> None:
        """Stop the refreshing thread for good (when the app is disposed of)."""
        with self._cond:
            self._stopped = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(self.wait)

    def get(self) -> Known:
        """Return what is known, waiting only when nothing is yet or it is older than max_age."""
        with self._cond:
            self._asked = time.monotonic()
            self._ensure_thread()
            known = self._known
            fresh_enough = known.as_of is not None and time.time() - known.as_of <= self.max_age
            first_pending = known.workers is None and self._refreshes == 0
            if not fresh_enough and (first_pending or known.workers is not None):
                seen = self._refreshes
                if not self._refreshing:
                    self._wake.set()
                self._cond.wait_for(lambda: self._refreshes > seen, timeout=self.wait)
            return self._known

    def _ensure_thread(self) -> None:
        if os.getpid() != self._pid:
            # A forked child (gunicorn --preload) inherits no thread of ours.
            self._pid, self._thread = os.getpid(), None
        if not self._stopped and (self._thread is None or not self._thread.is_alive()):
            self._thread = threading.Thread(target=self._run, name="registry-refresh",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopped or time.monotonic() - self._asked > self.idle:
                    self._thread = None
                    return
                # A wake-up asked for before this refresh began is answered by it.
                self._refreshing = True
                self._wake.clear()
            self._refresh()
            self._wake.wait(self.every)

    def _refresh(self) -> None:
        began = time.time()
        try:
            workers = self.fetch()
        except Exception as exc:  # the thread must outlive any failure, and report it
            error = str(exc) or repr(exc)
            if error != self._known.error:  # once per outage, not every few seconds
                logger.error("registry refresh failed: %s", error)
            with self._cond:
                self._known = Known(self._known.workers, self._known.as_of, error)
                self._refreshes, self._refreshing = self._refreshes + 1, False
                self._cond.notify_all()
            return
        with self._cond:
            self._known = Known(workers, began, None)
            self._refreshes, self._refreshing = self._refreshes + 1, False
            self._cond.notify_all()
