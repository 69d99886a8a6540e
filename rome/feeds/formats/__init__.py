"""Read and write the feed formats real results sources publish, one module per format.

Each module (``ap``, ``clarity``, ``nist``) offers two functions:

- ``parse(body: bytes, *, source: str, version: int | None = None) -> Snapshot``
  reads one feed response; ``version`` overrides the one the file implies
  (a Clarity version folder, say); raises ``InvalidPayload`` with a reason;
- ``render(snapshot: Snapshot) -> bytes`` writes a snapshot in that format,
  so that ``parse(render(s), source=s.source)`` gives back ``s``: the simulator
  speaks the real formats through it.

``ap`` also offers ``parse_chunks(chunks, *, source, version=None)``, the
same parse of a body given in pieces, read race by race: notekeeper streams
an archived AP answer through it (``parse_feed_chunks``) and never holds the
body or its decoded JSON whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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
    return _checked(format_name, lambda: module.parse(body, source=source, version=version),
                    max_ahead)


def parse_feed_chunks(
    format_name: str, chunks: Iterable[bytes], *, size: int, source: str,
    version: int | None = None, max_ahead: float | None = MAX_AHEAD,
    max_bytes: int = MAX_PAYLOAD_BYTES,
) -> Snapshot:
    """parse_feed of a body given in pieces, size bytes in all (as its archive row says).

    A format that can read pieces (AP) reads them as they come, and a body
    that turns out longer than max_bytes is refused as soon as it passes it;
    any other format is handed the body joined. A size over max_bytes is
    refused unread, as parse_feed refuses a body.
    """
    module = _modules().get(format_name) if isinstance(format_name, str) else None
    if module is None:
        raise InvalidPayload(f"unknown format {format_name!r:.40}")
    if size > max_bytes:
        raise InvalidPayload(f"payload is {size:,} bytes, over the {max_bytes:,} allowed "
                             "(ROME_MAX_FEED_BYTES)")
    chunks = _at_most(chunks, max_bytes)
    if not hasattr(module, "parse_chunks"):
        return parse_feed(format_name, b"".join(chunks), source=source, version=version,
                          max_ahead=max_ahead, max_bytes=max_bytes)
    return _checked(format_name,
                    lambda: module.parse_chunks(chunks, source=source, version=version),
                    max_ahead)


def _at_most(chunks: Iterable[bytes], max_bytes: int) -> Iterator[bytes]:
    read = 0
    for chunk in chunks:
        read += len(chunk)
        if read > max_bytes:
            raise InvalidPayload(f"payload is over {max_bytes:,} bytes, more than allowed "
                                 "(ROME_MAX_FEED_BYTES)")
        yield chunk


def _checked(format_name: str, parse, max_ahead: float | None) -> Snapshot:
    """Run parse and check what it gives: something said, and every field valid."""
    try:
        snapshot = parse()
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
