"""Plan the replay of recorded feed files: find them, order them by version, pace them.

A folder is read in version order: the version each file implies (AP's
response timestamp, NIST's GeneratedDate and SequenceStart), or for Clarity
the number of the version folder it sits in (Clarity's URLs carry it, the
file does not). A file that cannot be read is still sent, so the pipeline
rejects it with its reason, as it would a live feed's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rome.feeds.formats import parse_feed
from rome.feeds.inject import Message
from rome.feeds.snapshot import InvalidPayload

FEED_SUFFIXES = (".json", ".xml")
MAX_DELAY = 60.0  # seconds: a gap of hours in a recording is not worth waiting out


@dataclass(frozen=True)
class Recorded:
    path: Path
    message: Message
    version: int | None
    feed_at: float | None
    error: str | None = None


def feed_files(paths: list[Path]) -> list[Path]:
    """Expand folders into the feed files below them."""
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in FEED_SUFFIXES)
        else:
            files.append(path)
    return files


def guess_format(path: Path, body: bytes) -> str:
    """Tell a file's format from its contents: XML is Clarity, NIST reports say so."""
    head = body[:4096].lstrip()
    if head.startswith(b"<"):
        return "clarity"
    if b"ElectionReport" in head or b"ElectionResults." in head:
        return "nist"
    return "ap"


def folder_version(path: Path) -> int | None:
    """Return the number of the Clarity version folder path sits in, if any."""
    for part in reversed(path.parent.parts):
        if re.fullmatch(r"[0-9]{1,18}", part):
            return int(part)
    return None


def name_number(path: Path) -> int:
    """Return the last number in a file name (elex's recording-<unixtime>.json), or 0."""
    numbers = re.findall(r"[0-9]+", path.stem)
    return int(numbers[-1]) if numbers else 0


def plan_replay(paths: list[Path], source: str, format_name: str | None = None) -> list[Recorded]:
    """Read every file and return them in version order, each as the message to publish."""
    recorded = []
    for path in feed_files(paths):
        body = path.read_bytes()
        fmt = format_name or guess_format(path, body)
        version = folder_version(path) if fmt == "clarity" else None
        try:
            snapshot = parse_feed(fmt, body, source=source, version=version)
            version, feed_at, error = snapshot.version, snapshot.feed_at, None
        except InvalidPayload as exc:
            feed_at, error = None, str(exc)
        try:
            text = body.decode("utf-8")
            message = Message(source, text, version=version, format=fmt)
        except UnicodeDecodeError:
            import base64

            message = Message(source, base64.b64encode(body).decode(), "base64", version, fmt)
        recorded.append(Recorded(path, message, version, feed_at, error))
    return sorted(recorded, key=lambda r: (r.version is None, r.version or name_number(r.path),
                                           str(r.path)))


def delays(recorded: list[Recorded], speed: float) -> list[float]:
    """Return the pause after each file: the recording's own gaps divided by speed."""
    if speed <= 0:
        return [0.0] * len(recorded)
    times = [r.feed_at for r in recorded]
    pauses = []
    for here, after in zip(times, times[1:] + [None], strict=True):
        gap = (after - here) / speed if here is not None and after is not None else 0.0
        pauses.append(min(MAX_DELAY, max(0.0, gap)))
    return pauses
