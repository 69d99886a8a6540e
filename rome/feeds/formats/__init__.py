"""Read and write the feed formats real results sources publish, one module per format.

Each module (``ap``, ``clarity``, ``nist``) offers two functions:

- ``parse(body: bytes, *, source: str, version: int | None = None) -> Snapshot``
  reads one feed response; ``version`` overrides the one the file implies
  (a Clarity version folder, say); raises ``InvalidPayload`` with a reason;
- ``render(snapshot: Snapshot) -> bytes`` writes a snapshot in that format,
  so that ``parse(render(s), source=s.source)`` gives back ``s``: the simulator
  speaks the real formats through it.
"""

from __future__ import annotations

from types import ModuleType

from rome.feeds.snapshot import MAX_AHEAD, InvalidPayload, Snapshot

# A feed body larger than this is refused before it is parsed: far above a real
# national answer (AP at county level for a general election is tens of MB),
# the same ceiling the poller's HTTP client keeps. ROME_MAX_FEED_BYTES sets it
# for the workers (rome/settings.py).
MAX_PAYLOAD_BYTES = 256_000_000


def _modules() -> dict[str, ModuleType]:
    from rome.feeds.formats import ap, clarity, nist

    return {"ap": ap, "clarity": clarity, "nist": nist}


FORMAT_NAMES = ("ap", "clarity", "nist")


def parse_feed(
    format_name: str, body: str | bytes, *, source: str, version: int | None = None,
    max_ahead: float | None = MAX_AHEAD, max_bytes: int = MAX_PAYLOAD_BYTES,
) -> Snapshot:
    """Parse one feed body of format_name into a validated snapshot, or raise InvalidPayload.

    A feed time more than max_ahead seconds ahead of the clock is refused
    (Snapshot.validate); None skips that check. A body over max_bytes is
    refused unread.
    """
    module = _modules().get(format_name) if isinstance(format_name, str) else None
    if module is None:
        raise InvalidPayload(f"unknown format {format_name!r:.40}")
    if isinstance(body, str):
        body = body.encode("utf-8", errors="surrogatepass")
    if not isinstance(body, bytes):
        raise InvalidPayload(f"payload must be text, got {type(body).__name__}")
    if len(body) > max_bytes:
        raise InvalidPayload(f"payload is {len(body):,} bytes, over the {max_bytes:,} allowed "
                             "(ROME_MAX_FEED_BYTES)")
    try:
        snapshot = module.parse(body, source=source, version=version)
    except RecursionError:
        raise InvalidPayload("payload is nested too deeply") from None
    # An AP initialization file names races and candidates and no counts yet: it
    # is reference data, worth storing. A file with neither says nothing.
    if not snapshot.counts and not snapshot.races:
        raise InvalidPayload(f"{format_name} payload carries no races and no counts")
    return snapshot.validate(max_ahead=max_ahead)


def render_feed(format_name: str, snapshot: Snapshot) -> bytes:
    """Write snapshot in format_name."""
    return _modules()[format_name].render(snapshot)
