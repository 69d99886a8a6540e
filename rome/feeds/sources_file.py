"""Read ROME_SOURCES: the live endpoints to poll, one ``[[source]]`` table each, from TOML.

::

    [[source]]
    id = "ap"                       # short lowercase id, as snapshots' source
    format = "ap"                   # ap | clarity | nist
    url = "https://api.ap.org/v2/elections/2024-11-05?format=json&level=state"
    interval = 10                   # seconds between polls
    api_key_env = "AP_API_KEY"      # AP: the variable holding the key (sent as x-api-key)
    requests_per_minute = 10        # never more in any 60 s, retries included
    user_agent = "Rome results desk (ops@example.org)"
    name = "Associated Press"

A bad file raises SourcesError naming the file, the line of the table at
fault and the key, so whoever edits it finds the mistake at once.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from rome.feeds.snapshot import SOURCE_ID

FORMATS = ("ap", "clarity", "nist")
# Descriptive, as providers ask (some Clarity firewalls refuse Python's own).
DEFAULT_USER_AGENT = "Rome-results-poller/1.0 (election results desk; polls politely)"
DEFAULT_REQUESTS_PER_MINUTE = {"ap": 12, "clarity": 60, "nist": 30}
KEYS = ("id", "format", "url", "interval", "api_key_env", "requests_per_minute", "user_agent",
        "name")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
MIN_INTERVAL, MAX_INTERVAL = 1.0, 86_400.0


class SourcesError(ValueError):
    """The sources file cannot be used; the message names the file, line and key."""


@dataclass(frozen=True)
class SourceSpec:
    """One endpoint to poll, as the sources file describes it."""

    id: str
    format: str
    url: str
    interval: float
    name: str
    requests_per_minute: int
    user_agent: str = DEFAULT_USER_AGENT
    api_key_env: str | None = None
    line: int = 0  # where its table starts in the file

    def api_key(self, env) -> str | None:
        """The key to send, read from the environment when needed (never stored or logged)."""
        return env.get(self.api_key_env) or None if self.api_key_env else None

    def public(self) -> dict:
        """What may be shown: everything but the key (its variable's name is no secret)."""
        return {"id": self.id, "name": self.name, "format": self.format, "url": self.url,
                "interval": self.interval, "requests_per_minute": self.requests_per_minute}


def _table_lines(text: str) -> list[int]:
    """The 1-based line of each [[source]] header, in order."""
    return [i for i, line in enumerate(text.splitlines(), 1)
            if re.match(r"\s*\[\[\s*source\s*\]\]", line)]


def _key_line(text: str, start: int, key: str) -> int:
    """The line where key is set inside the table starting at line start (start if not found)."""
    lines = text.splitlines()
    for i in range(start, len(lines)):
        if re.match(r"\s*\[", lines[i]):
            break
        if re.match(rf"\s*{re.escape(key)}\s*=", lines[i]):
            return i + 1
    return start


def parse_sources(text: str, where: str = "ROME_SOURCES") -> list[SourceSpec]:
    """Check and read a sources file's text; raise SourcesError naming line and key."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SourcesError(f"{where}: not valid TOML: {exc}") from None
    extra = sorted(set(doc) - {"source"})
    if extra:
        raise SourcesError(f"{where}: unknown top-level key {extra[0]!r}; "
                           "each source is a [[source]] table")
    tables = doc.get("source")
    if not isinstance(tables, list) or not tables:
        raise SourcesError(f"{where}: no [[source]] table: name at least one source")
    lines = _table_lines(text)
    specs: list[SourceSpec] = []
    for index, table in enumerate(tables):
        line = lines[index] if index < len(lines) else 0
        specs.append(_spec(table, text, line, where))
    seen: dict[str, int] = {}
    for spec in specs:
        if spec.id in seen:
            raise SourcesError(f"{where}:{_key_line(text, spec.line, 'id')}: key 'id': "
                               f"{spec.id!r} is already the id of the source on line "
                               f"{seen[spec.id]}")
        seen[spec.id] = spec.line
    return specs


def _spec(table: dict, text: str, line: int, where: str) -> SourceSpec:
    def fail(key: str, message: str) -> SourcesError:
        return SourcesError(f"{where}:{_key_line(text, line, key)}: key {key!r}: {message}")

    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise fail(unknown[0], f"unknown key; a source takes {', '.join(KEYS)}")
    for key in ("id", "format", "url", "interval"):
        if key not in table:
            raise SourcesError(f"{where}:{line}: [[source]] has no {key!r}")
    source_id = table["id"]
    if not isinstance(source_id, str) or not SOURCE_ID.fullmatch(source_id):
        raise fail("id", f"{source_id!r} must be a short lowercase id (a-z, 0-9, _; "
                         "starting with a letter; at most 16)")
    fmt = table["format"]
    if fmt not in FORMATS:
        raise fail("format", f"{fmt!r} must be one of {', '.join(FORMATS)}")
    url = table["url"]
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise fail("url", f"{url!r} must be an http:// or https:// URL")
    if re.search(r"(?:^|&)api_?key=", parts.query, re.I):
        raise fail("url", "carries an API key: URLs are logged, archived and shown; put the "
                          "key in an environment variable and name it in api_key_env")
    if fmt == "clarity":
        from rome.feeds.poll.clarity import election_of  # it reads this module's specs

        try:
            election_of(url)
            base = parts.path.endswith("/")
        except ValueError:
            base = False
        if not base:
            raise fail("url", f"{url!r}: a Clarity url is an election's base folder, ending in "
                              "'/' (…/GA/105369/ or …/GA/Fulton/105430/)")
    interval = table["interval"]
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not (
            MIN_INTERVAL <= interval <= MAX_INTERVAL):
        raise fail("interval", f"{interval!r} must be a number of seconds from "
                               f"{MIN_INTERVAL:g} to {MAX_INTERVAL:g}")
    rpm = table.get("requests_per_minute", DEFAULT_REQUESTS_PER_MINUTE[fmt])
    if isinstance(rpm, bool) or not isinstance(rpm, int) or not 1 <= rpm <= 6000:
        raise fail("requests_per_minute", f"{rpm!r} must be a whole number from 1 to 6000")
    env_name = table.get("api_key_env")
    if env_name is not None and (not isinstance(env_name, str) or not ENV_NAME.fullmatch(env_name)):
        raise fail("api_key_env", "must be the NAME of an environment variable (the key "
                                  "itself never goes in this file)")
    agent = table.get("user_agent", DEFAULT_USER_AGENT)
    if not isinstance(agent, str) or not agent.strip() or len(agent) > 300 or any(
            ord(ch) < 32 for ch in agent):
        raise fail("user_agent", "must be one line of text, at most 300 characters")
    name = table.get("name", source_id)
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise fail("name", "must be text of 1 to 100 characters")
    return SourceSpec(id=source_id, format=fmt, url=url, interval=float(interval), name=name,
                      requests_per_minute=rpm, user_agent=agent, api_key_env=env_name, line=line)


def load_sources(path: str | Path) -> list[SourceSpec]:
    """Read and check the sources file at path."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourcesError(f"ROME_SOURCES={str(path)!r} cannot be read: {exc}") from None
    return parse_sources(text, str(path))
