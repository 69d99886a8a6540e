"""Clarity (Scytl): read ``current_ver.txt``; fetch a version's files only when it moved.

The configured URL is an election's base folder: a county's
(``…/GA/Fulton/105430/``) or a state's (``…/GA/105369/``).

- Every cycle asks ``current_ver.txt``. The same version as last time, with no
  county left to retry, ends the cycle: nothing else is asked.
- A county election: ``<ver>/reports/detailxml.zip``, one snapshot at version ``ver``.
- A state election: ``<ver>/json/en/electionsettings.json``; its
  ``settings.electiondetails.participatingcounties`` entries read
  ``County|id|version|time|…``; only counties whose version moved are fetched,
  from ``…/<ST>/<County>/<id>/<version>/reports/detailxml.zip`` (the county's name as the
  list writes it, underscores for spaces: ``Ben_Hill``), each its own
  snapshot scope (its race keys carry the county, see ``scoped``).
- A county whose zip is missing (404) or bad is recorded with its reason and
  retried next cycle; the others go on.
Zips are opened with limits: exactly one member, at most MAX_UNZIPPED bytes.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
import zlib
from dataclasses import replace
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from rome.feeds.formats._common import folded
from rome.feeds.poll import Item, Keep, Outcome, PollState
from rome.feeds.poll.http import Fetcher, FetchError
from rome.feeds.snapshot import CandidateRef, Count, RaceRef, RaceStatus, Snapshot
from rome.feeds.sources_file import SourceSpec

MAX_UNZIPPED = 64_000_000
VERSION = re.compile(r"\d{1,18}")
POSTAL = re.compile(r"[A-Z]{2}")


class BadZip(ValueError):  # a ValueError: _fetch records it as the county's failure
    """A zip Rome will not open; the message says why."""


def election_of(url: str) -> tuple[str, str | None, str]:
    """(state, county or None, election id) of a base URL ``…/ST/[County/]id/``."""
    parts = [unquote(p) for p in urlsplit(url).path.split("/") if p]
    if len(parts) >= 3 and POSTAL.fullmatch(parts[-3]) and not POSTAL.fullmatch(parts[-2]):
        return parts[-3], parts[-2], parts[-1]
    if len(parts) >= 2 and POSTAL.fullmatch(parts[-2]):
        return parts[-2], None, parts[-1]
    raise ValueError(f"{url!r} is not a Clarity election base (…/ST/id/ or …/ST/County/id/)")


def version_of(body: bytes) -> str:
    """Read current_ver.txt: a whole number."""
    text = body.decode("ascii", "replace").strip()
    if not VERSION.fullmatch(text):
        raise ValueError(f"current_ver.txt is not a version number: {text[:40]!r}")
    return text


def counties_of(body: bytes) -> dict[str, tuple[str, str]]:
    """County -> (id, version), from electionsettings.json's participatingcounties."""
    try:
        doc = json.loads(body)
        entries = doc["settings"]["electiondetails"]["participatingcounties"]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise ValueError(f"electionsettings.json has no participatingcounties: {exc!r:.100}"
                         ) from None
    if not isinstance(entries, list):
        raise ValueError("participatingcounties is not a list")
    counties = {}
    for entry in entries:
        fields = entry.split("|") if isinstance(entry, str) else []
        if len(fields) < 3 or not fields[0] or not VERSION.fullmatch(fields[1]) or \
                not VERSION.fullmatch(fields[2]):
            raise ValueError(f"participatingcounties entry {entry!r:.80} is not "
                             "County|id|version|…")
        counties[fields[0]] = (fields[1], fields[2])
    return counties


def moved(counties: dict[str, tuple[str, str]], state: PollState) -> dict[str, tuple[str, str]]:
    """Counties to fetch: those whose version moved, and those that failed last time."""
    todo = {name: (cid, ver) for name, (cid, ver) in counties.items()
            if state.county_versions.get(name) != ver}
    for name, (cid, ver) in state.pending.items():
        todo.setdefault(name, counties.get(name, (cid, ver)))
    return todo


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def base_path(url: str) -> str:
    path = urlsplit(url).path
    return path if path.endswith("/") else path + "/"


def county_zip_url(url: str, county: str, county_id: str, version: str) -> str:
    """``…/<ST>/<County>/<id>/<version>/reports/detailxml.zip`` beside a state's base."""
    state_root = base_path(url).rstrip("/").rsplit("/", 1)[0]  # drop the election id
    return _with_path(url, f"{state_root}/{quote(county)}/{county_id}/{version}"
                           "/reports/detailxml.zip")


def unzip_one(body: bytes, limit: int = MAX_UNZIPPED) -> bytes:
    """The one member of a zip, read with a bound on its real size; BadZip otherwise."""
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if len(members) != 1:
                raise BadZip(f"zip holds {len(members)} files, not one")
            member = members[0]
            if member.file_size > limit:
                raise BadZip(f"zip member is {member.file_size} bytes, over {limit}")
            out, size = [], 0
            with archive.open(member) as stream:
                while chunk := stream.read(1 << 20):
                    size += len(chunk)
                    if size > limit:  # the header may lie
                        raise BadZip(f"zip member unpacks past {limit} bytes")
                    out.append(chunk)
            return b"".join(out)
    except BadZip:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError,
            ValueError, OSError) as exc:
        raise BadZip(f"bad zip: {type(exc).__name__}: {exc}") from None


def scoped(snapshot: Snapshot, county: str) -> Snapshot:
    """The snapshot of one county of a state election: its race keys carry the county.

    County files of one state share contest names ("President|1"); keyed by
    county, no two counties' races, statuses or versions ever meet.
    """
    prefix = f"{folded(county)}/"
    shown = county.replace("_", " ")  # Clarity writes "Ben_Hill" in the list and its URLs

    def key(race: str) -> str:
        return prefix + race

    return replace(
        snapshot,
        races=tuple(RaceRef(key(r.key), f"{r.name} ({shown})", r.state, r.office)
                    for r in snapshot.races),
        candidates=tuple(CandidateRef(key(c.race), c.key, c.first, c.last, c.party)
                         for c in snapshot.candidates),
        counts=tuple(Count(key(n.race), n.unit, n.candidate, n.votes, n.vote_type)
                     for n in snapshot.counts),
        statuses=tuple(RaceStatus(key(s.race), s.precincts_reporting, s.precincts_total,
                                  s.winner) for s in snapshot.statuses),
    )


def _fetch(fetcher: Fetcher, url: str, keep: Keep, out: Outcome, *, check, kind: str,
           version: str | None, scope: str | None = None):
    """GET url; archive the body (as kind, or "error" when check refuses it or not a 200).

    Return (what check read, the archive id); raise ValueError or FetchError on failure.
    """
    answer = fetcher.get(url)
    out.requests += 1
    out.status = answer.status
    try:
        if answer.status != 200:
            raise ValueError(f"HTTP {answer.status}")
        read = check(answer.body)
    except ValueError:
        keep(answer, kind="error", version=version, scope=scope)
        raise
    return read, keep(answer, kind=kind, version=version or read, scope=scope)


def _zip(fetcher: Fetcher, url: str, keep: Keep, version: str, scope: str | None,
         out: Outcome) -> Item:
    """Fetch and check one detailxml.zip; archive it; raise ValueError/FetchError on failure."""
    _, archive_id = _fetch(fetcher, url, keep, out, check=unzip_one, kind="zip",
                           version=version, scope=scope)
    return Item(archive_id, "clarity", int(version), scope)


def poll(fetcher: Fetcher, spec: SourceSpec, state: PollState, keep: Keep) -> Outcome:
    """One cycle of current_ver.txt, then what moved; update state's versions."""
    out = Outcome()
    _, county, _ = election_of(spec.url)
    base = _with_path(spec.url, base_path(spec.url))
    try:
        version, _ = _fetch(fetcher, base + "current_ver.txt", keep, out, check=version_of,
                            kind="control", version=None)
    except (FetchError, ValueError) as exc:
        out.error = f"current_ver.txt: {exc}"
        return out
    if version == state.version and not state.pending:
        return out  # nothing moved: nothing more is asked
    if county is not None:
        try:
            out.items.append(_zip(fetcher, f"{base}{version}/reports/detailxml.zip", keep,
                                  version, None, out))
        except (FetchError, ValueError) as exc:
            out.error = f"{version}/reports/detailxml.zip: {exc}"
            return out
        state.version, out.changed = version, True
        return out
    try:
        counties, _ = _fetch(fetcher, f"{base}{version}/json/en/electionsettings.json", keep,
                             out, check=counties_of, kind="control", version=version)
    except (FetchError, ValueError) as exc:
        out.error = f"{version}/json/en/electionsettings.json: {exc}"
        return out
    stopped = None
    for name, (cid, cver) in sorted(moved(counties, state).items()):
        if stopped is None:
            try:
                out.items.append(_zip(fetcher, county_zip_url(spec.url, name, cid, cver), keep,
                                      cver, name, out))
                state.county_versions[name] = cver
                state.pending.pop(name, None)
                state.county_errors.pop(name, None)
                out.changed = True
                continue
            except FetchError as exc:
                reason = str(exc)
                if "deadline" in reason:
                    stopped = reason
            except ValueError as exc:
                reason = str(exc)
        else:
            reason = f"not reached: {stopped}"
        state.pending[name] = [cid, cver]
        state.county_errors[name] = f"{name} {cver}: {reason}"
    state.version = version
    if state.county_errors:
        failed = len(state.county_errors)
        out.error = (f"{failed} count{'y' if failed == 1 else 'ies'} failed: "
                     + "; ".join(list(state.county_errors.values())[:3]))
    return out
