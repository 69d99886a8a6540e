"""The one HTTP client pollers use: httpx, with timeouts, a deadline and a polite limiter.

Every request has a connect and a read timeout, no longer than what is left
of the poll's deadline; every request (a retry too) first takes a slot from
the source's sliding-window limiter, so no 60 s ever holds more than
``requests_per_minute`` of them. Requests carry the source's user agent (a
descriptive one by default: some Clarity firewalls refuse Python's) and, for
AP, the key as ``x-api-key``, read from the environment and never logged.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from rome.feeds.sources_file import SourceSpec

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 20.0
WINDOW = 60.0
# The provider counts requests as they arrive, which is later than the limiter stamps them
# by a varying delay (connecting, a loaded machine, the server's own queue): two requests
# stamped 60.0 s apart can arrive 59.8 s apart. `rome bench polling` measured 13 requests in
# one 60 s of a source limited to 12 with a 60 s window. The limiter's window is therefore a
# second wider than the provider's: the requests of any 60 s it lets through stay within
# the limit as long as arrival delays differ by less than MARGIN.
MARGIN = 1.0
LIMITER_WINDOW = WINDOW + MARGIN
# A body larger than this is cut off and counted as an error, not read into memory.
MAX_BODY_BYTES = 256_000_000


class FetchError(Exception):
    """A request got no usable answer: the message is the reason (timeout, refused...)."""


class DeadlineReached(FetchError):
    """The poll's deadline passed; what is left waits for the next cycle."""


class RateLimited(DeadlineReached):
    """The source's requests_per_minute allows no request before the deadline: none sent."""


@dataclass(frozen=True)
class Answer:
    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    fetched_at: float


class Limiter:
    """At most per_minute requests in any sliding LIMITER_WINDOW seconds (the provider's 60
    and a MARGIN); stamps persist across polls."""

    def __init__(self, per_minute: int, stamps: list[float] | None = None):
        self.per_minute = per_minute
        self.stamps = sorted(stamps or [])

    def trim(self, now: float) -> list[float]:
        self.stamps = [t for t in self.stamps if t > now - LIMITER_WINDOW]
        return self.stamps

    def wait(self, now: float) -> float:
        """Seconds until a request may go (0: now)."""
        recent = self.trim(now)
        if len(recent) < self.per_minute:
            return 0.0
        return recent[len(recent) - self.per_minute] + LIMITER_WINDOW - now + 1e-3

    def take(self, now: float) -> None:
        self.trim(now)
        self.stamps.append(now)


class Fetcher:
    """GET with httpx for one source's poll: limiter, deadline, user agent, key."""

    def __init__(self, spec: SourceSpec, *, deadline: float, stamps: list[float] | None = None,
                 env: Mapping[str, str] | None = None,
                 transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep,
                 connect_timeout: float = CONNECT_TIMEOUT, read_timeout: float = READ_TIMEOUT):
        self.spec = spec
        self.clock, self.sleep = clock, sleep
        self.deadline = clock() + deadline
        self.limiter = Limiter(spec.requests_per_minute, stamps)
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.requests = 0
        self.limited = False  # a request was held back by the limiter (RateLimited)
        headers = {"User-Agent": spec.user_agent, "Accept-Encoding": "gzip"}
        key = spec.api_key(os.environ if env is None else env)
        if key:
            headers["x-api-key"] = key
        self.client = httpx.Client(headers=headers, transport=transport,
                                   follow_redirects=False, trust_env=False)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def left(self) -> float:
        return self.deadline - self.clock()

    def pause(self, seconds: float) -> None:
        """Wait, if the deadline allows it; else stop the poll."""
        if seconds >= self.left():
            raise DeadlineReached(f"poll deadline reached (a wait of {seconds:.1f} s would "
                                  "pass it)")
        if seconds > 0:
            self.sleep(seconds)

    def get(self, url: str, headers: Mapping[str, str] | None = None) -> Answer:
        """One GET, counted against the limiter; raise FetchError when no answer came."""
        wait = self.limiter.wait(self.clock())
        if wait and wait >= self.left():
            self.limited = True
            raise RateLimited(f"the limit of {self.spec.requests_per_minute} requests a minute "
                              f"is reached: the next request may go in {wait:.1f} s, past this "
                              "poll's deadline")
        self.pause(wait)
        left = self.left()
        if left <= 0:
            raise DeadlineReached("poll deadline reached")
        self.limiter.take(self.clock())
        self.requests += 1
        timeout = httpx.Timeout(connect=min(self.connect_timeout, left),
                                read=min(self.read_timeout, left), write=min(5.0, left),
                                pool=min(5.0, left))
        try:
            with self.client.stream("GET", url, headers=headers, timeout=timeout) as response:
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_BODY_BYTES:
                        raise FetchError(f"GET {_shown(url)}: body over {MAX_BODY_BYTES} bytes")
                    if self.clock() > self.deadline:
                        raise DeadlineReached(f"GET {_shown(url)}: poll deadline reached "
                                              "while reading the body")
                    chunks.append(chunk)
                return Answer(url, response.status_code, dict(response.headers),
                              b"".join(chunks), self.clock())
        except httpx.TimeoutException as exc:
            raise FetchError(f"GET {_shown(url)}: timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"GET {_shown(url)}: {type(exc).__name__}: {exc}") from None


def _shown(url: str) -> str:
    """A URL as errors show it: at most 200 characters."""
    return url if len(url) <= 200 else url[:197] + "..."
