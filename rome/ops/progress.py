"""A one-line progress bar for commands that publish or wait on counts (inject, replay, bench)."""

from __future__ import annotations

import sys
import time


class Progress:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.stream = max(total, 1), stream
        self.enabled = stream.isatty()
        self.started = time.monotonic()
        self.shown = 0.0

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self.shown < 0.1):
            return
        self.shown = now
        width = 30
        filled = int(width * done / self.total)
        rate = done / max(now - self.started, 1e-9)
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] "
                          f"{done}/{self.total} counts {rate:,.0f}/s")
        if final:
            self.stream.write("\n")
        self.stream.flush()
