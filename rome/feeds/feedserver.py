"""Serve recorded or simulated feeds over HTTP with each provider's semantics, for tests and demos.

``FeedServer`` answers as the providers do (docs/polling.md, "The feed server"):

- AP Elections API v2 at ``/ap/v2/elections/{date}``: the full current answer,
  with ``nextrequest`` carrying ``minDateTime`` (the server's time of the
  answer); with ``minDateTime``, only the races changed after it; answers over
  ``page_size`` races come in pages chained by ``isTruncated`` and
  ``nextrequest``; ``x-api-key`` (or ``apiKey``) when a key is set, else 401;
  over ``requests_per_minute``, AP's 403 with an XML body whatever format was
  asked. AP's per-race and per-unit ``lastUpdated`` are computed here: the
  server's time of the version in which they last changed.
- Clarity at ``/clarity/{ST}/{id}/``: ``current_ver.txt``, every version's
  ``{ver}/reports/detailxml.zip`` (one member, ``detail.xml``) and, for a
  state, ``{ver}/json/en/electionsettings.json`` listing its counties as
  ``County|id|version|time``, each county at ``/clarity/{ST}/{County}/{id}/``.
  Only a county whose file changed gets a new version; old versions stay served.
- NIST at ``/nist/{name}.json`` with a strong ETag and Last-Modified; a
  matching ``If-None-Match`` or a fresh ``If-Modified-Since`` gets 304.

``advance()`` moves every recorded feed to its next version; ``fault()`` makes
the next matching requests fail (slow, 500, refuse, truncate, badzip, 404,
quota); ``requests`` is the log of every request received. With ``simulated``,
the simulated night (rome/feeds/simulator.py) is served, moving with the clock.
The server is the standard library's threading HTTP server: a test and demo
tool, not a production one.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import threading
import time
import zipfile
from collections import deque
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from rome.feeds.feednight import read_files, recorded_night
from rome.feeds.formats import parse_feed
from rome.feeds.formats._common import iso_micros, iso_text
from rome.feeds.formats.clarity import _stamp_text as clarity_time
from rome.feeds.snapshot import InvalidPayload

FAULT_KINDS = ("slow", "500", "refuse", "truncate", "badzip", "404", "quota")
# AP's answer over quota, as elex#163 recorded it: XML even when JSON was asked.
AP_QUOTA_BODY = (b'<Error xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><Code>403</Code>'
                 b'<Message>Over quota limit.</Message>'
                 b'<link href="https://developer.ap.org/api-console" rel="help"/></Error>')
AP_KEY_BODY = (b'<Error xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><Code>401</Code>'
               b'<Message>Missing or invalid API key.</Message></Error>')
FIREWALL_BODY = b"<html><body><h1>403 Forbidden</h1>Request blocked.</body></html>\n"
ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # fixed, so one body always zips to the same bytes
# Clarity's version numbers count on from the server's clock (ms since this epoch), so a
# restarted server never numbers a new version below one it served before.
CLARITY_EPOCH = 1_600_000_000
CONTROL = "/_feedserver/"  # where advance, faults and the log are reached over HTTP
CURSORS_KEPT = 256  # pages of truncated AP answers remembered for their continuation


class FeedServerError(ValueError):
    """Feed files or options the server cannot serve; the message says which and why."""


@dataclass(frozen=True)
class RequestRecord:
    """One request the server received (headers keyed in lower case)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    time: float
    target: str = ""  # the path and query exactly as the client sent them

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Fault:
    kind: str
    path_prefix: str
    remaining: int
    seconds: float | None = None  # a slow answer's delay, else the server's slow_seconds


@dataclass
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    last_modified: float | None = None  # seconds since 1970: If-Modified-Since applies


def _ms_text(ms: int) -> str:
    return iso_text(ms * 1000, 3)


# --- AP ---------------------------------------------------------------------------------------

def _race_key(race: dict) -> str:
    units = race.get("reportingUnits") or [{}]
    return f"{race.get('statePostal') or units[0].get('statePostal', '')}-{race.get('raceID')}"


def _unit_key(row: dict) -> str:
    return f"{row.get('statePostal')}:{row.get('level')}:{row.get('reportingunitID', '')}"


def _without_stamps(value: dict) -> dict:
    copy = {k: v for k, v in value.items() if k != "lastUpdated"}
    if isinstance(copy.get("reportingUnits"), list):
        copy["reportingUnits"] = [_without_stamps(row) for row in copy["reportingUnits"]]
    return copy


def _asked_for(race: dict, asked: dict[str, str]) -> bool:
    """Tell whether race passes the statePostal, officeID and raceID filters asked for."""
    values = {"statepostal": _race_key(race).split("-", 1)[0], "officeid": race.get("officeID"),
              "raceid": race.get("raceID")}
    return all(values[name] in asked[name].split(",") for name in values if asked.get(name))


class APFeed:
    """One AP election date: its versions, and when each race and unit last changed."""

    def __init__(self, date: str, versions: list[dict]):
        self.date = date
        self.versions = versions
        self.step = -1
        self.races: list[dict] = []
        self.race_at: dict[str, int] = {}
        self.unit_at: dict[tuple[str, str], int] = {}

    def show(self, doc: dict, stamp: int) -> None:
        """Make doc the current version; races and units that changed are stamped."""
        before = {_race_key(r): r for r in self.races}
        races = []
        for race in doc.get("races", []):
            key = _race_key(race)
            old = before.get(key)
            if old is None or _without_stamps(old) != _without_stamps(race):
                self.race_at[key] = stamp
            old_rows = {_unit_key(r): r for r in (old or {}).get("reportingUnits") or []}
            for row in race.get("reportingUnits") or []:
                unit = _unit_key(row)
                was = old_rows.get(unit)
                if was is None or _without_stamps(was) != _without_stamps(row):
                    self.unit_at[key, unit] = stamp
            races.append(race)
        self.races = races

    def stamped(self, race: dict) -> dict:
        """Return race with its lastUpdated, and its units', as the server computed them."""
        key = _race_key(race)
        out = dict(race, lastUpdated=_ms_text(self.race_at[key]))
        if isinstance(race.get("reportingUnits"), list):
            out["reportingUnits"] = [dict(row, lastUpdated=_ms_text(self.unit_at[key,
                                                                                 _unit_key(row)]))
                                     for row in race["reportingUnits"]]
        return out


# --- Clarity -----------------------------------------------------------------------------------

class ClarityFeed:
    """One Clarity jurisdiction's published versions (a state or a county election)."""

    def __init__(self, state: str, election_id: int, night: list[bytes], county: str = ""):
        self.state, self.election_id, self.night, self.county = state, election_id, night, county
        self.step = -1
        self.published: dict[int, bytes] = {}
        self.settings: dict[int, bytes] = {}
        self.published_at: dict[int, float] = {}
        self.version = 0

    @property
    def path(self) -> str:
        where = f"{self.state}/{self.county.replace(' ', '_')}" if self.county else self.state
        return f"/clarity/{where}/{self.election_id}/"

    def publish(self, body: bytes, now: float, force: bool = False) -> bool:
        """Publish body as a new version unless it is the current one; say whether it was."""
        if self.version and self.published[self.version] == body and not force:
            return False
        self.version = max(self.version + 1, int((now - CLARITY_EPOCH) * 1000))
        self.published[self.version] = body
        self.published_at[self.version] = now
        return True


def _zip(body: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("detail.xml", ZIP_TIME), body, zipfile.ZIP_DEFLATED)
    return out.getvalue()


# --- NIST --------------------------------------------------------------------------------------

class NISTFeed:
    def __init__(self, name: str, night: list[bytes]):
        self.name, self.night = name, night
        self.step = -1
        self.body = b""
        self.etag = ""
        self.modified = 0.0

    def publish(self, body: bytes, now: float) -> None:
        if body != self.body:
            self.body = body
            self.etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            self.modified = float(int(now))  # HTTP dates are whole seconds


# --- the server ------------------------------------------------------------------------------

class FeedServer:
    """Serve AP, Clarity and NIST feeds with each provider's semantics, and faults on demand."""

    def __init__(
        self,
        *,
        ap: list[Path] | tuple = (),
        clarity: list[Path] | tuple = (),
        nist: list[Path] | tuple = (),
        simulated: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        steps: int = 4,
        api_key: str | None = None,
        requests_per_minute: int | None = None,
        quota_window: float = 60.0,
        page_size: int | None = None,
        slow_seconds: float = 5.0,
        clarity_state: str | None = None,
        clarity_election_id: int = 105369,
        refuse_agents: tuple[str, ...] = (),
        interval: float = 2.0,
        seed: str = "feedserver",
        update_chance: float = 0.3,
        night_length: float = 10_800.0,
        clock=time.time,
    ):
        if steps < 1:
            raise FeedServerError(f"steps must be 1 or more, got {steps}")
        if page_size is not None and page_size < 1:
            raise FeedServerError(f"page size must be 1 race or more, got {page_size}")
        if requests_per_minute is not None and requests_per_minute < 1:
            raise FeedServerError(f"requests per minute must be 1 or more, got "
                                  f"{requests_per_minute}")
        self.host, self.port = host, port
        self.api_key = api_key
        self.requests_per_minute, self.quota_window = requests_per_minute, quota_window
        self.page_size, self.slow_seconds = page_size, slow_seconds
        self.refuse_agents = tuple(agent.lower() for agent in refuse_agents)
        self.clock = clock
        self._lock = threading.RLock()
        self._log: list[RequestRecord] = []
        self._faults: list[Fault] = []
        self._served: deque[float] = deque()  # AP answers in the quota window
        self._cursors: dict[str, tuple[list[dict], int, str]] = {}
        self._cursor_count = 0
        self._last_stamp = 0
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.ap: dict[str, APFeed] = {}
        self.clarity: dict[str, ClarityFeed] = {}  # by path
        self.counties: dict[str, list[ClarityFeed]] = {}  # a state election's path -> counties
        self.nist: dict[str, NISTFeed] = {}
        self._load_ap(list(ap), steps)
        self._load_clarity(list(clarity), steps, clarity_state, clarity_election_id)
        self._load_nist(list(nist), steps)
        self.simulation = None
        if simulated:
            from rome.feeds.feedsim import Simulation

            self.simulation = Simulation(self, seed=seed, chance=update_chance,
                                         interval=interval, started_at=clock(),
                                         length=night_length)
        if not (self.ap or self.clarity or self.nist):
            raise FeedServerError("nothing to serve: give AP, Clarity or NIST files, or simulated")
        self.advance()

    # --- loading recorded files ---

    def _load_ap(self, paths: list[Path], steps: int) -> None:
        by_date: dict[str, list[bytes]] = {}
        for path, body in read_files(paths, (".json",)):
            doc = _read(path, body, "ap")
            date = doc.get("electionDate")
            if not isinstance(date, str) or not re.fullmatch(r"\d{4}-\d\d-\d\d", date):
                raise FeedServerError(f"{path}: an AP answer names its electionDate")
            by_date.setdefault(date, []).append(body)
        for date, bodies in by_date.items():
            night = [json.loads(b) for b in recorded_night("ap", bodies, steps)]
            self.ap[date] = APFeed(date, night)

    def _load_clarity(self, paths: list[Path], steps: int, state: str | None,
                      election_id: int) -> None:
        states: dict[str, list[bytes]] = {}
        counties: dict[str, list[bytes]] = {}
        for path, body in read_files(paths, (".xml",)):
            snapshot = _parse(path, body, "clarity")
            top = next(u for u in snapshot.units if u.parent is None)
            (states if top.level == "state" else counties).setdefault(top.name, []).append(body)
        if len(states) > 1:
            raise FeedServerError(f"Clarity files of {len(states)} states: serve one at a time")
        if states:
            (named,) = states
            if state and state != named:
                raise FeedServerError(f"the Clarity state file is {named}, not {state}")
            state = named
        if counties and not state:
            raise FeedServerError("Clarity county files without their state's file: name the "
                                  "state (--clarity-state)")
        if states:
            feed = ClarityFeed(state, election_id, recorded_night("clarity", states[state], steps))
            self.clarity[feed.path] = feed
            self.counties[feed.path] = []
        for i, (name, bodies) in enumerate(sorted(counties.items())):
            county = ClarityFeed(state, election_id + 1 + i,
                                 recorded_night("clarity", bodies, steps), name)
            self.clarity[county.path] = county
            if states:
                self.counties[f"/clarity/{state}/{election_id}/"].append(county)

    def _load_nist(self, paths: list[Path], steps: int) -> None:
        groups: dict[str, list[bytes]] = {}
        for path, body in read_files(paths, (".json",)):
            _parse(path, body, "nist")
            # Versions of one feed share a name once their numbers are dropped.
            name = re.sub(r"[-_.]?[0-9]{6,}$", "", path.stem) or path.stem
            groups.setdefault(re.sub(r"[^A-Za-z0-9_.-]", "-", name), []).append(body)
        for name, bodies in groups.items():
            self.nist[name] = NISTFeed(name, recorded_night("nist", bodies, steps))

    # --- control, used by tests ---

    def start(self) -> str:
        """Start answering in a background thread; return the base URL (http://host:port)."""
        if self._httpd is not None:
            return self.base_url
        handler = type("Handler", (_Handler,), {"feeds": self})
        self._httpd = _Server((self.host, self.port), handler)
        self.port = self._httpd.server_address[1]
        self._stopping.clear()
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="feedserver",
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self.base_url

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        """Stop answering; slow answers under way are cut short."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> FeedServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def advance(self) -> None:
        """Move every recorded feed to its next version (the last one stays)."""
        with self._lock:
            now = self.clock()
            stamp = self._change_stamp(now)
            for feed in self.ap.values():
                if feed.step + 1 < len(feed.versions):
                    feed.step += 1
                    feed.show(feed.versions[feed.step], stamp)
            moved = {}
            for feed in self.clarity.values():
                moved[feed.path] = feed.step + 1 < len(feed.night)
                if moved[feed.path]:
                    feed.step += 1
                    moved[feed.path] = feed.publish(feed.night[feed.step], now)
            for path, counties in self.counties.items():
                self._publish_state(self.clarity[path], counties, now,
                                    not moved[path] and any(moved[c.path] for c in counties))
            for feed in self.nist.values():
                if feed.step + 1 < len(feed.night):
                    feed.step += 1
                    feed.publish(feed.night[feed.step], now)

    def _publish_state(self, feed: ClarityFeed, counties: list[ClarityFeed], now: float,
                       county_moved: bool) -> None:
        """Give a state election a new version when a county's moved, and list its counties."""
        if county_moved:  # the state's own file is the same, its county list is not
            feed.publish(feed.published[feed.version], now, force=True)
        if feed.version not in feed.settings:
            entries = [f"{c.county}|{c.election_id}|{c.version}|"
                       f"{clarity_time(int(c.published_at[c.version]))}" for c in counties]
            feed.settings[feed.version] = json.dumps(
                {"settings": {"electiondetails": {"participatingcounties": entries}}}).encode()

    def fault(self, kind: str, path_prefix: str = "", count: int = 1,
              seconds: float | None = None) -> None:
        """Make the next count requests whose path starts with path_prefix fail as kind.

        A slow answer waits seconds (default: the server's slow_seconds).
        """
        if kind not in FAULT_KINDS:
            raise FeedServerError(f"unknown fault {kind!r}: one of {', '.join(FAULT_KINDS)}")
        if count < 1:
            raise FeedServerError(f"a fault is for 1 request or more, got {count}")
        if seconds is not None and not 0 <= seconds <= 3600:
            raise FeedServerError(f"a slow answer waits 0 to 3600 s, got {seconds}")
        with self._lock:
            self._faults.append(Fault(kind, path_prefix, count, seconds))

    def clear_faults(self, path_prefix: str = "") -> int:
        """Forget the faults still pending for paths starting with path_prefix; return how many."""
        with self._lock:
            gone = [f for f in self._faults if f.path_prefix.startswith(path_prefix)]
            self._faults = [f for f in self._faults if f not in gone]
        return len(gone)

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._log)

    def urls(self) -> list[tuple[str, str]]:
        """Return (format, URL) of every feed served: what a poller is pointed at."""
        return [(feed["format"], feed["url"]) for feed in self.feeds()]

    def feeds(self) -> list[dict[str, str]]:
        """Describe every feed served: a source id for it, its format, URL and name.

        The simulated night's feeds keep the ids the pipeline's catalog knows
        them by (ap, mc, sos); a recorded feed's id says its format and what it is.
        """
        base, sim = self.base_url, self.simulation
        out = []
        for date, feed in self.ap.items():
            out.append({"id": "ap" if sim and feed is sim.ap else f"ap_{date.replace('-', '')}",
                        "format": "ap", "name": f"AP, {date}",
                        "url": f"{base}/ap/v2/elections/{date}?format=json&level=ru"})
        within = {id(c) for cs in self.counties.values() for c in cs}
        for feed in self.clarity.values():
            if id(feed) in within:
                continue  # a state's poller finds its counties in the state's county list
            where = feed.county or feed.state
            out.append({"id": "mc" if sim and feed is sim.mc else _source_id("cl", where),
                        "format": "clarity", "name": f"Clarity, {where}", "url": base + feed.path})
        for name, feed in self.nist.items():
            out.append({"id": "sos" if sim and feed is sim.sos else _source_id("nist", name),
                        "format": "nist", "name": f"NIST, {name}",
                        "url": f"{base}/nist/{quote(name)}.json"})
        return out

    def sources_toml(self, interval: float, api_key_env: str | None = None) -> str:
        """Write a sources file (ROME_SOURCES, issue 19) naming every feed served."""
        lines = [f"# The feeds of the feed server at {self.base_url}."]
        for feed in self.feeds():
            lines += ["", "[[source]]"]
            lines += [f"{key} = {json.dumps(feed[key])}" for key in ("id", "format", "url",
                                                                     "name")]
            lines.append(f"interval = {interval:g}")
            if feed["format"] == "ap" and api_key_env:
                lines.append(f"api_key_env = {json.dumps(api_key_env)}")
            if feed["format"] == "ap" and self.requests_per_minute:
                lines.append(f"requests_per_minute = {self.requests_per_minute}")
        return "\n".join(lines) + "\n"

    def control(self, method: str, target: str) -> Answer:
        """Answer the control paths: advance, faults and the request log over HTTP."""
        split = urlsplit(target)
        asked = dict(parse_qsl(split.query))
        action = split.path.removeprefix(CONTROL)
        if action == "requests" and method in ("GET", "HEAD"):
            # Whether a key was sent shows; the key itself is not handed to whoever asks.
            log = [{"method": r.method, "path": r.path, "time": r.time,
                    "target": re.sub(r"(?i)(apikey=)[^&]*", r"\1(sent)", r.target),
                    "query": {k: "(sent)" if k.lower() == "apikey" else v
                              for k, v in r.query.items()},
                    "headers": {k: "(sent)" if k == "x-api-key" else v
                                for k, v in r.headers.items()}} for r in self.requests]
            return Answer(200, json.dumps(log).encode(), "application/json")
        if method != "POST" or action not in ("advance", "fault"):
            usage = (f"control paths: POST {CONTROL}advance, POST {CONTROL}fault?kind=K[&path=P]"
                     f"[&count=N][&seconds=S], GET {CONTROL}requests\n")
            return Answer(404, usage.encode())
        try:
            if action == "advance":
                self.advance()
            else:
                seconds = asked.get("seconds")
                self.fault(asked.get("kind", ""), asked.get("path", ""),
                           int(asked.get("count", "1")),
                           None if seconds is None else float(seconds))
        except (FeedServerError, ValueError) as exc:
            return Answer(400, f"{exc}\n".encode())
        return Answer(200, b"done\n")

    # --- time ---

    def _change_stamp(self, now: float) -> int:
        """A feed change's time in ms: after every minDateTime already handed out."""
        self._last_stamp = max(int(now * 1000), self._last_stamp + 1)
        return self._last_stamp

    def _answer_stamp(self, now: float) -> int:
        self._last_stamp = max(int(now * 1000), self._last_stamp)
        return self._last_stamp

    # --- answering ---

    def take_fault(self, path: str, zipped: bool) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if path.startswith(fault.path_prefix) and (fault.kind != "badzip" or zipped):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def record(self, method: str, target: str, headers: dict[str, str]) -> RequestRecord:
        split = urlsplit(target)
        entry = RequestRecord(method, unquote(split.path), dict(parse_qsl(split.query, True)),
                              headers, self.clock(), target)
        with self._lock:
            self._log.append(entry)
        return entry

    def answer(self, request: RequestRecord, target: str, host: str) -> Answer:
        if self.simulation is not None:
            self.simulation.catch_up()
        path = request.path
        with self._lock:
            if path.startswith("/ap/v2/elections/"):
                return self._answer_ap(request, target, host)
            if path.startswith("/clarity/"):
                agent = (request.header("user-agent") or "").lower()
                if any(refused in agent for refused in self.refuse_agents):
                    # A Clarity site's firewall refusing bots by name (elex-clarity#27).
                    return Answer(403, FIREWALL_BODY, "text/html")
                return self._answer_clarity(path)
            if path.startswith("/nist/"):
                return self._answer_nist(path)
        return Answer(404, b"no feed here\n")

    def _answer_ap(self, request: RequestRecord, target: str, host: str) -> Answer:
        date = request.path.removeprefix("/ap/v2/elections/").strip("/")
        feed = self.ap.get(date)
        if feed is None:
            return Answer(404, b"no AP election on that date\n")
        query = parse_qsl(urlsplit(target).query, keep_blank_values=True)
        asked = {k.lower(): v for k, v in query}
        if self.api_key is not None and self.api_key not in (request.header("x-api-key"),
                                                             asked.get("apikey")):
            return Answer(401, AP_KEY_BODY, "application/xml")
        now = self.clock()
        if self.requests_per_minute is not None:
            while self._served and self._served[0] <= now - self.quota_window:
                self._served.popleft()
            if len(self._served) >= self.requests_per_minute:
                return Answer(403, AP_QUOTA_BODY, "application/xml")
        if asked.get("format", "json").lower() != "json":
            return Answer(400, b"this server answers format=json only\n")
        self._served.append(now)
        kept = [(k, v) for k, v in query
                if k.lower() not in ("mindatetime", "continuation", "offset")]
        cursor = asked.get("continuation")
        if cursor is not None:
            if cursor not in self._cursors:
                return Answer(400, b"unknown or expired continuation\n")
            races, stamp, since = self._cursors[cursor]
            try:
                offset = int(asked.get("offset", "0"))
            except ValueError:
                return Answer(400, b"offset must be a whole number\n")
        else:
            since = asked.get("mindatetime")
            try:
                after = None if since is None else iso_micros(since, "minDateTime") // 1000
            except InvalidPayload as exc:
                return Answer(400, f"{exc}\n".encode())
            stamp, offset = self._answer_stamp(now), 0
            races = [feed.stamped(r) for r in feed.races
                     if (after is None or feed.race_at[_race_key(r)] > after)
                     and _asked_for(r, asked)]
            if self.page_size is not None and len(races) > self.page_size:
                self._cursor_count += 1
                cursor = f"{stamp}-{self._cursor_count}"
                self._cursors[cursor] = (races, stamp, since or "")
                while len(self._cursors) > CURSORS_KEPT:
                    del self._cursors[next(iter(self._cursors))]
        size = self.page_size or max(len(races), 1)
        page = races[offset:offset + size]
        truncated = offset + size < len(races)
        if truncated:
            more = kept + ([("minDateTime", since)] if since else []) + [
                ("continuation", cursor), ("offset", str(offset + size))]
        else:
            more = kept + [("minDateTime", _ms_text(stamp))]
        doc = {"electionDate": date, "timestamp": _ms_text(stamp), "isTruncated": truncated,
               "races": page,
               "nextrequest": f"http://{host}{quote(request.path)}?{urlencode(more)}"}
        return Answer(200, json.dumps(doc, separators=(",", ":")).encode(),
                      "application/json; charset=utf-8")

    def _answer_clarity(self, path: str) -> Answer:
        parts = path.split("/")  # "", "clarity", ST, [County,] id, ...
        feed, rest = None, ""
        for size in (4, 5):  # a state's election, then a county's
            feed = self.clarity.get("/".join(parts[:size]) + "/")
            if feed is not None:
                rest = "/".join(parts[size:])
                break
        if feed is None:
            return Answer(404, b"no Clarity election here\n")
        if rest == "current_ver.txt":
            return Answer(200, str(feed.version).encode(),
                          last_modified=feed.published_at[feed.version])
        found = re.fullmatch(r"([0-9]+)/(reports/detailxml\.zip|json/en/electionsettings\.json)",
                             rest)
        version = int(found[1]) if found else None
        if version not in feed.published:
            return Answer(404, b"no such Clarity version or file\n")
        modified = feed.published_at[version]
        if found[2].startswith("reports/"):
            return Answer(200, _zip(feed.published[version]), "application/zip",
                          last_modified=modified)
        if version not in feed.settings:
            return Answer(404, b"a county election has no county list\n")
        return Answer(200, feed.settings[version], "application/json; charset=utf-8",
                      last_modified=modified)

    def _answer_nist(self, path: str) -> Answer:
        feed = self.nist.get(path.removeprefix("/nist/").removesuffix(".json"))
        if feed is None or not path.endswith(".json"):
            return Answer(404, b"no NIST feed here\n")
        return Answer(200, feed.body, "application/json; charset=utf-8",
                      {"ETag": feed.etag}, last_modified=feed.modified)


def _source_id(prefix: str, name: str) -> str:
    """Make a short lowercase source id (Snapshot's SOURCE_ID) from a prefix and a name."""
    return f"{prefix}_{re.sub(r'[^a-z0-9]+', '_', name.lower()).strip('_')}"[:16].rstrip("_")


def _read(path: Path, body: bytes, format_name: str) -> dict:
    _parse(path, body, format_name)
    return json.loads(body)


def _parse(path: Path, body: bytes, format_name: str):
    try:
        return parse_feed(format_name, body, source="feedserver", max_ahead=None)
    except InvalidPayload as exc:
        raise FeedServerError(f"{path}: not a {format_name} feed file: {exc}") from None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


class _Handler(BaseHTTPRequestHandler):
    feeds: FeedServer
    protocol_version = "HTTP/1.1"
    server_version = "RomeFeedServer/1"

    def log_message(self, format, *args) -> None:  # noqa: A002 (the base class's name)
        pass  # every request is in FeedServer.requests

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= 65_536:
            self.close_connection = True
            self._send(Answer(400, b"a control request carries no body\n"), None, False)
            return
        self.rfile.read(length)  # what a client sent along is not read as the next request
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        server = self.feeds
        headers = {k.lower(): v for k, v in self.headers.items()}
        if self.path.startswith(CONTROL):
            self._send(server.control(self.command, self.path), None, head)
            return
        request = server.record(self.command, self.path, headers)
        if self.command not in ("GET", "HEAD"):
            self._send(Answer(405, b"feeds are read with GET\n"), None, head)
            return
        fault = server.take_fault(request.path, request.path.endswith(".zip"))
        kind = fault.kind if fault else None
        if kind == "refuse":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if kind == "500":
            answer = Answer(500, b"internal server error (a fault asked for)\n")
        elif kind == "404":
            answer = Answer(404, b"not found (a fault asked for)\n")
        elif kind == "quota":
            answer = Answer(403, AP_QUOTA_BODY, "application/xml")
        else:
            answer = server.answer(request, self.path,
                                   self.headers.get("Host") or f"{server.host}:{server.port}")
        if kind == "slow":
            server._stopping.wait(server.slow_seconds if fault.seconds is None else fault.seconds)
        elif kind == "badzip":
            answer = Answer(200, answer.body[: len(answer.body) // 2], "application/zip")
        if answer.status == 200:
            answer = _conditional(answer, headers)
        self._send(answer, kind, head)

    def _send(self, answer: Answer, kind: str | None, head: bool) -> None:
        body = b"" if head or answer.status == 304 else answer.body
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if answer.last_modified is not None:
                self.send_header("Last-Modified", formatdate(answer.last_modified, usegmt=True))
            if kind == "truncate":
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_header("Content-Length", str(len(answer.body) if head else len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client left; nothing to tell it


def _conditional(answer: Answer, headers: dict[str, str]) -> Answer:
    """Give a strong ETag to a 200 answer, and 304 when the client already holds it."""
    etag = answer.headers.get("ETag") or '"' + hashlib.sha256(answer.body).hexdigest()[:32] + '"'
    answer.headers["ETag"] = etag
    match = headers.get("if-none-match")
    if match is not None:
        tags = {t.strip().removeprefix("W/") for t in match.split(",")}
        fresh = "*" in tags or etag in tags
    elif headers.get("if-modified-since") and answer.last_modified is not None:
        try:
            since = parsedate_to_datetime(headers["if-modified-since"]).timestamp()
        except (TypeError, ValueError, IndexError):
            since = None
        fresh = since is not None and int(answer.last_modified) <= since
    else:
        fresh = False
    if fresh:
        answer.status = 304
    return answer
