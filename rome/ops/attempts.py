"""Name the client behind an address, and limit how many refusals a client gets in the log."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


def client_key(address: str | None) -> str:
    """Name the client behind an address: IPv4 as is, IPv6 by its /64 (one host's share)."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass
class Window:
    """What one client did since its first refused attempt of this window."""

    started: float
    refusals: int = 0
    logged: int = 0
    logged_other: int = 0  # of those logged, refusals that were not a guess


@dataclass(frozen=True)
class Summary:
    """A finished window in which some refusals were counted but not logged one by one."""

    client: str
    refusals: int
    logged: int
    seconds: float


class AttemptLimiter:
    """Per client and window: which refusals of a secret to log, and how many went unlogged.

    How many wrong guesses a client may make is decided elsewhere (for the
    wipeout, rome.store.guesses, in the database every process shares); each
    one that is checked is logged in full. So are the first `limit` other
    refusals of a window (`window` seconds from the client's first refusal):
    no token, a forged form. A flood of those cannot hide a guess. The rest,
    and the attempts refused unchecked while a client is stopped, are only
    counted, and `finished` reports their number once the window is over.
    Held in memory, per process; at most `max_clients` windows are kept (the
    oldest go first).
    """

    def __init__(self, limit: int = 10, window: float = 900.0, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self.max_clients, self.clock = limit, window, max_clients, clock
        self._windows: dict[str, Window] = {}
        self._lock = threading.Lock()

    def _current(self, client: str) -> Window:
        found = self._windows.get(client)
        if found is None or self.clock() - found.started >= self.window:
            self._windows.pop(client, None)  # a finished window starts again, last in line
            while len(self._windows) >= self.max_clients:
                del self._windows[next(iter(self._windows))]
            found = self._windows[client] = Window(started=self.clock())
        return found

    def refused(self, client: str, *, guess: bool) -> bool:
        """Count a refused attempt (a checked wrong guess if guess); return whether to log it."""
        with self._lock:
            found = self._current(client)
            found.refusals += 1
            log_it = guess or found.logged_other < self.limit
            found.logged += log_it
            found.logged_other += log_it and not guess
            return log_it

    def stopped(self, client: str) -> None:
        """Count an attempt refused unchecked (the client is stopped): never logged alone."""
        with self._lock:
            self._current(client).refusals += 1

    def granted(self, client: str) -> None:
        """Forget client's window: it has just shown the secret."""
        with self._lock:
            self._windows.pop(client, None)

    def finished(self) -> list[Summary]:
        """Remove the windows that are over; return those that had refusals left unlogged."""
        now = self.clock()
        with self._lock:
            over = [(c, w) for c, w in self._windows.items() if now - w.started >= self.window]
            for client, _ in over:
                del self._windows[client]
        return [Summary(client, w.refusals, w.logged, round(now - w.started))
                for client, w in over if w.refusals > w.logged]
