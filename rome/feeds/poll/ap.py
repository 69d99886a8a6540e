"""AP Elections API v2: the configured URL first, then each answer's ``nextrequest``, verbatim.

- An answer's ``nextrequest`` (an absolute URL carrying ``minDateTime``) is the
  next request, exactly as given; while ``isTruncated`` is true it is requested
  at once, until an answer says false. A cycle ends on the first complete answer.
- An answer with no races (nothing changed since minDateTime) is archived and
  goes no further: it costs nothing downstream.
- A 403 whose body says the quota is spent (XML, even when JSON was asked)
  waits QUOTA_WAIT seconds and asks the same URL again; the wait and the retry
  count against the limiter and the deadline like any request.
- Anything else (5xx, a timeout, a body that is not JSON) ends the cycle; the
  next one starts from the same URL, so nothing is skipped.
An incremental answer carries only the races that changed: each becomes a
snapshot of those races alone, and since a count changes only through a newer
version of itself, races absent from it keep what they had (rome/store/tally.py).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from rome.feeds.poll import Item, Keep, Outcome, PollState
from rome.feeds.poll.http import Fetcher, FetchError
from rome.feeds.sources_file import SourceSpec

QUOTA_WAIT = (5.0, 10.0)  # seconds, as AP asks
MAX_CHAIN = 1000  # truncated answers followed in one cycle, at most
QUOTA_WORDS = re.compile(rb"quota|rate|limit|over\s*q", re.I)


@dataclass(frozen=True)
class ApAnswer:
    """What the protocol needs of one 200 answer."""

    nextrequest: str | None
    truncated: bool
    races: int
    timestamp: str | None


def first_request(spec: SourceSpec, state: PollState) -> str:
    """The URL to ask now: the last answer's nextrequest, or the configured one."""
    return state.next_url or spec.url


def read_answer(body: bytes) -> ApAnswer:
    """Read nextrequest, isTruncated and the race count of an answer; ValueError if not AP JSON."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"not JSON: {str(exc)[:120]}") from None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    races = doc.get("races")
    nextrequest = doc.get("nextrequest")
    if nextrequest is not None and not isinstance(nextrequest, str):
        raise ValueError("nextrequest is not text")
    stamp = doc.get("timestamp")
    return ApAnswer(nextrequest or None, doc.get("isTruncated") is True,
                    len(races) if isinstance(races, list) else 0,
                    stamp if isinstance(stamp, str) else None)


def is_quota(status: int, body: bytes) -> bool:
    """AP's quota answer: a 403 saying so, in XML whatever format was asked."""
    return status == 403 and (body.lstrip()[:1] == b"<" or bool(QUOTA_WORDS.search(body[:2000])))


def next_url(spec: SourceSpec, current: str, answer: ApAnswer) -> str:
    """The URL after this answer: its nextrequest verbatim (same host as configured), else again.

    A nextrequest on another host is refused: the key goes with every request.
    """
    if answer.nextrequest is None:
        return current
    want, got = urlsplit(spec.url), urlsplit(answer.nextrequest)
    if got.scheme not in ("http", "https") or got.netloc != want.netloc:
        raise ValueError(f"nextrequest {answer.nextrequest[:120]!r} is not on {want.netloc}")
    return answer.nextrequest


def poll(fetcher: Fetcher, spec: SourceSpec, state: PollState, keep: Keep) -> Outcome:
    """One cycle: ask, follow truncated answers, wait out quota 403s; update state.next_url."""
    out = Outcome()
    url = first_request(spec, state)
    for _ in range(MAX_CHAIN):
        try:
            answer = fetcher.get(url)
        except FetchError as exc:
            out.error = str(exc)
            break
        out.requests += 1
        out.status = answer.status
        if is_quota(answer.status, answer.body):
            keep(answer, kind="error", version=None, scope=None)
            try:
                fetcher.pause(random.uniform(*QUOTA_WAIT))
            except FetchError as exc:
                out.error = f"quota 403, then {exc}"
                break
            continue  # the same URL again
        if answer.status != 200:
            keep(answer, kind="error", version=None, scope=None)
            out.error = f"HTTP {answer.status} from {urlsplit(url).path}"
            break
        try:
            parsed = read_answer(answer.body)
            following = next_url(spec, url, parsed)
        except ValueError as exc:
            keep(answer, kind="error", version=None, scope=None)
            out.error = f"AP answer refused: {exc}"
            break
        # Kept either way; an answer with no races is kept as "empty": it goes nowhere,
        # now or in a replay.
        archive_id = keep(answer, kind="feed" if parsed.races else "empty",
                          version=parsed.timestamp, scope=None)
        if parsed.races:
            out.items.append(Item(archive_id, "ap"))
            out.changed = True
        state.next_url = url = following
        if not parsed.truncated:
            break
    else:
        out.error = f"more than {MAX_CHAIN} truncated answers in one cycle"
    return out
