"""NIST 1500-100: one document at the configured URL, asked conditionally.

Each request sends ``If-None-Match`` (the last ETag) and ``If-Modified-Since``
(the last Last-Modified); a 304 ends the cycle at the cost of one request and
nothing downstream. A 200 is archived and sent on; its validators kept.
"""

from __future__ import annotations

from rome.feeds.poll import Item, Keep, Outcome, PollState
from rome.feeds.poll.http import Fetcher, FetchError
from rome.feeds.sources_file import SourceSpec


def conditional_headers(state: PollState) -> dict[str, str]:
    """The validators of the last answer, as request headers."""
    headers = {}
    if state.etag:
        headers["If-None-Match"] = state.etag
    if state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    return headers


def poll(fetcher: Fetcher, spec: SourceSpec, state: PollState, keep: Keep) -> Outcome:
    out = Outcome()
    try:
        answer = fetcher.get(spec.url, conditional_headers(state))
    except FetchError as exc:
        out.error = str(exc)
        return out
    out.requests, out.status = 1, answer.status
    if answer.status == 304:
        return out
    if answer.status != 200:
        keep(answer, kind="error", version=None, scope=None)
        out.error = f"HTTP {answer.status}"
        return out
    headers = {k.lower(): v for k, v in answer.headers.items()}
    etag, modified = headers.get("etag"), headers.get("last-modified")
    archive_id = keep(answer, kind="feed", version=etag or modified, scope=None)
    out.items.append(Item(archive_id, "nist"))
    state.etag, state.last_modified = etag, modified
    out.changed = True
    return out


