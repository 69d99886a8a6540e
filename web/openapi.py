"""Build the API's OpenAPI document from the TypedDicts its JSON is made of.

    python -m web.openapi > web/openapi.json

writes the committed copy that /api/openapi.json serves; a test fails when it
differs from a fresh build. A schema is read off a TypedDict (``FooJson`` is
``Foo``) and the ``Meta`` of its fields; what every revalidated GET shares,
the ETag, the 304 and the 503, is one component each.
"""

from __future__ import annotations

import json

from rome.read.shapes import (
    MAX_PAGE,
    MAX_POINTS,
    NationalIndexJson,
    OriginalRowJson,
    RaceHistoryJson,
    RaceJson,
    RaceListJson,
    RejectedListJson,
    StateRacesJson,
)
from rome.read.sources import LiveSourceListJson
from rome.schema import Schemas
from rome.store.tally import WipeoutResultJson
from web.api import DEFAULT_REJECTED, MAX_ID, MAX_OFFICE, MAX_REJECTED, MAX_VALUES
from web.errors import ErrorJson
from web.export import HISTORY_COLUMNS, RESULT_COLUMNS
from web.wipeout import WIPEOUT_GUESSES, WIPEOUT_LOGGED, WIPEOUT_WINDOW

VERSION = "2.3.0"  # 2.3: races filtered and paged, the national index, a state's races
DESCRIPTION = (
    "Live results of the races Rome ingests, straight from its tallies and history. Sources "
    "report cumulative snapshots; per count the newest version wins, and a lower figure in a "
    "newer version is a correction, applied and counted.\n\nEvery GET but /metrics answers "
    "with an `ETag` and `Cache-Control: no-cache`: poll with `If-None-Match` and an unchanged "
    "result costs a `304 Not Modified`. Errors are JSON objects with one `error` message. Times "
    "are RFC 3339, in UTC."
)
TEXT = {"schema": {"type": "string"}}


LISTING_PARAMETERS = (
    {"name": "state", "in": "query", "required": False, "style": "form", "explode": False,
     "description": f"Postal codes, in any case, comma-separated (or the parameter repeated); "
                    f"at most {MAX_VALUES}.",
     "schema": {"type": "array", "minItems": 1, "maxItems": MAX_VALUES,
                "items": {"type": "string", "pattern": "^[A-Za-z0-9-]{1,16}$"}},
     "example": ["GA", "AZ"]},
    {"name": "office", "in": "query", "required": False, "style": "form", "explode": True,
     "description": "Offices as the feeds name them, the parameter repeated for each (names "
                    "may hold commas; never a NUL, which no stored name holds).",
     "schema": {"type": "array", "minItems": 1, "maxItems": MAX_VALUES,
                "items": {"type": "string", "minLength": 1, "maxLength": MAX_OFFICE,
                          "pattern": "^[^\u0000]*$"}},
     "example": ["U.S. Senate"]},
    {"name": "race", "in": "query", "required": False, "style": "form", "explode": False,
     "description": "Race ids, comma-separated.",
     "schema": {"type": "array", "minItems": 1, "maxItems": MAX_VALUES,
                "items": {"type": "integer", "minimum": 0, "maximum": MAX_ID}},
     "example": [1, 2]},
    {"name": "limit", "in": "query", "required": False,
     "description": "Races per page; without it, every match after `offset`.",
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}},
    {"name": "offset", "in": "query", "required": False,
     "description": "Matches to skip, in id order.",
     "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID, "default": 0}},
)


def ref(kind: str, name: str) -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def json_body(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def error(description: str, *, html: bool = False) -> dict:
    """Document a failure answered as {"error": ...} (and as a page when html)."""
    content = json_body(ref("schemas", "Error"))
    if html:
        content["text/html"] = TEXT
    return {"description": description, "content": content}


def revalidated_get(operation_id: str, summary: str, ok: str, content: dict, *,
                    description: str | None = None, parameters: tuple = (),
                    errors: dict | None = None, pages: bool = False) -> dict:
    """Document a GET that web.caching.revalidate tags: ETag, 304 on a match, 503 when down.

    pages: the route is outside /api/, so its errors are pages unless JSON is preferred.
    """
    operation = {"operationId": operation_id, "summary": summary}
    if description:
        operation["description"] = description
    operation["parameters"] = [*parameters, ref("parameters", "IfNoneMatch")]
    operation["responses"] = {
        "200": {
            "description": ok,
            "headers": {"ETag": ref("headers", "ETag"),
                        "Cache-Control": ref("headers", "CacheControl")},
            "content": content,
        },
        "304": ref("responses", "NotModified"),
        **(errors or {}),
        "503": ref("responses", "UnavailablePage" if pages else "Unavailable"),
    }
    return {"get": operation}


def build() -> dict:
    """Return the OpenAPI document of Rome's HTTP API."""
    schemas = Schemas("#/components/schemas/")
    schemas.component(ErrorJson)
    race_id = ref("parameters", "RaceId")
    no_race = ref("responses", "NoSuchRace")
    csv_ok = "CSV with a header line (RFC 4180), as a download."
    paths = {
        "/api/races": revalidated_get(
            "listRaces", "The races, all or by state, office and id, a page at a time",
            "The races asked for, how many match, links to the pages around, and how many "
            "payloads were rejected.",
            json_body(schemas.of(RaceListJson)),
            description=(
                "Without parameters, every race (what the live results page polls). With any, "
                "the races that match every filter given (each filter matches any of its "
                "values), in id order; `limit` and `offset` page them, and `next` and "
                "`previous` link the pages around with the same filters. A race new to the "
                "night gets the next id, so pages already read stay put. At national size "
                "(thousands of races) ask by state or office, or a page at a time; "
                "`/api/index` finds races."
            ),
            parameters=LISTING_PARAMETERS,
            errors={"400": error("A filter or paging parameter is malformed or out of range.")},
        ),
        "/api/index": revalidated_get(
            "nationalIndex", "Every race, small: by state and office, to find races",
            "Every state's races, by office: id, name, leader, percent reporting, called.",
            json_body(schemas.of(NationalIndexJson)),
            description=(
                "What a search box filters in the browser: no candidates, sources or figures "
                "beyond the leader's name, percent reporting and whether the race is called. "
                "The race itself is `/api/races/{race_id}`."
            ),
        ),
        "/api/states/{state}": revalidated_get(
            "getStateRaces", "One state's races, as /api/races lists them",
            "Every race of the state, in id order.", json_body(schemas.of(StateRacesJson)),
            parameters=({
                "name": "state", "in": "path", "required": True,
                "description": "Postal code, in any case.",
                "schema": {"type": "string"}, "example": "AZ",
            },),
            errors={"404": error("No race is in this state, or it is not a postal code.")},
        ),
        "/api/races/{race_id}": revalidated_get(
            "getRace", "One race", "The race.", json_body(schemas.of(RaceJson)),
            parameters=(race_id,), errors={"404": no_race},
        ),
        "/api/races/{race_id}/history": revalidated_get(
            "getRaceHistory", "One race's running totals over time, from the history",
            "The race's totals over time.", json_body(schemas.of(RaceHistoryJson)),
            description=(
                "Cumulative votes per candidate as reported by the race's primary source "
                "(`source`) at its top level, one point per bucket of applied changes (at most "
                f"{MAX_POINTS} points; the bucket widens with the time span). Corrections show "
                "as a total going down. `votes_at_since` holds each candidate's total as of "
                "`since`, so the first point needs nothing earlier. For a chart window, not an "
                "exactly-once change feed: use `/api/races/{race_id}` for current totals."
            ),
            parameters=(race_id, {
                "name": "since", "in": "query", "required": False,
                "description": "Only points after this moment; without an offset it is UTC.",
                "schema": {"type": "string", "format": "date-time"},
                "example": "2016-11-08T20:00:00Z",
            }),
            errors={"400": error("since is not an RFC 3339 date-time."), "404": no_race},
        ),
        "/api/rejected": revalidated_get(
            "listRejected", "The newest rejected payloads, with the reason for each",
            "Newest first, and the count of all rejected payloads.",
            json_body(schemas.of(RejectedListJson)),
            parameters=({
                "name": "limit", "in": "query", "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_REJECTED,
                           "default": DEFAULT_REJECTED},
            },),
            errors={"400": error(f"limit is not an integer from 1 to {MAX_REJECTED}.")},
        ),
        "/api/sources": revalidated_get(
            "listSources", "The live sources Rome polls, and where each one's polling stands",
            "Each source of ROME_SOURCES: last poll, HTTP status, next poll, requests in the "
            "last minute, last error; empty when Rome runs its simulated night.",
            json_body(schemas.of(LiveSourceListJson)),
        ),
        "/race": revalidated_get(
            "originalRows",
            "The original nero's rows (JSON): one per race, candidate and reporting source; "
            "or the results page (HTML)",
            "The rows, or the page.",
            {**json_body({"type": "array", "items": schemas.of(OriginalRowJson)}),
             "text/html": TEXT},
            description=(
                "Content negotiation: `Accept: application/json` gets the rows, exactly the "
                "original Go service's `race.Item` (ids as strings, `voteCount` an int32, "
                "`source` the source's code: `AP`, `MC`, `SOS`); browsers get the page."
            ),
            pages=True,
        ),
        "/race/wipeout": {"post": wipeout(schemas)},
        "/metrics": {"get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics, read from the database at scrape time",
            "responses": {
                "200": {"description": "Prometheus text format.",
                        "content": {"text/plain": TEXT}},
                "503": ref("responses", "UnavailablePage"),
            },
        }},
        "/api/races.csv": revalidated_get(
            "getRacesCsv", "Every race's figures as CSV", csv_ok, {"text/csv": TEXT},
            description=(
                "One row per race, candidate and reporting source: "
                f"{', '.join(RESULT_COLUMNS)}. `headline` is true on the row of the source the "
                "page's headline reads. A cell a spreadsheet would read as a formula starts "
                "with `'`."
            ),
        ),
        "/api/races/{race_id}/history.csv": revalidated_get(
            "getRaceHistoryCsv", "One race's running totals as CSV", csv_ok, {"text/csv": TEXT},
            description=f"One row per point and candidate: {', '.join(HISTORY_COLUMNS)}.",
            parameters=(race_id,), errors={"404": no_race},
        ),
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "Rome election results API", "version": VERSION,
                 "description": DESCRIPTION},
        "paths": paths,
        "components": {
            "securitySchemes": {"adminToken": {
                "type": "http", "scheme": "bearer", "description": "ROME_ADMIN_TOKEN",
            }},
            "parameters": {
                "RaceId": {"name": "race_id", "in": "path", "required": True,
                           "schema": {"type": "integer", "minimum": 0}},
                "IfNoneMatch": {
                    "name": "If-None-Match", "in": "header", "required": False,
                    "description": "ETag of the copy the client holds: the answer is 304 "
                                   "while it is still current.",
                    "schema": {"type": "string"},
                },
            },
            "headers": {
                "ETag": {"description": "Tag of this representation; send it back in "
                                        "If-None-Match.",
                         "schema": {"type": "string"}},
                "CacheControl": {"description": "`no-cache`: a cache may keep the response but "
                                                "must revalidate it before each use.",
                                 "schema": {"type": "string"}},
            },
            "responses": {
                "NotModified": {
                    "description": "Not modified: the copy whose ETag was sent is still current.",
                    "headers": {"ETag": ref("headers", "ETag")},
                },
                "NoSuchRace": error("No race has this id."),
                "Unavailable": error("The results database is unavailable."),
                "UnavailablePage": error(
                    "The results database is unavailable: JSON for clients that prefer it, "
                    "else a page.", html=True),
            },
            "schemas": schemas.components,
        },
    }


def wipeout(schemas: Schemas) -> dict:
    """Document POST /race/wipeout: by bearer token (JSON) or by the page's form (redirect)."""
    either = {"html": True}
    guesses, logged, minutes = WIPEOUT_GUESSES, WIPEOUT_LOGGED, round(WIPEOUT_WINDOW / 60)
    return {
        "operationId": "wipeout",
        "summary": "Delete every result: current counts, history, tallies, series and race "
                   "status (admin only)",
        "description": (
            "With `Authorization: Bearer <admin token>` this answers JSON. The results page "
            "posts a form instead (admin token, confirmation and its CSRF token) and is "
            "redirected back. Refused (403) when no admin token is configured. A client has at "
            f"most {guesses} tokens checked in any {minutes} minutes (a sliding window, shared "
            "by every web process): past that it is refused (429), its token unchecked, until "
            f"its oldest wrong token is {minutes} minutes old. Attempts are logged with their "
            f"time and origin (every wrong token and {logged} other refusals a client per "
            f"{minutes} minutes one by one, the rest summed up)."
        ),
        "security": [{"adminToken": []}, {}],
        "requestBody": {"required": False, "content": {
            "application/x-www-form-urlencoded": {"schema": {
                "type": "object",
                "required": ["token", "confirm", "csrf_token"],
                "properties": {
                    "token": {"type": "string", "description": "The admin token."},
                    "confirm": {"type": "string", "enum": ["yes"]},
                    "csrf_token": {"type": "string",
                                   "description": "The token the results page put in its form."},
                },
            }},
        }},
        "responses": {
            "200": {"description": "What was deleted.",
                    "content": json_body(schemas.of(WipeoutResultJson))},
            "303": {"description": "Form accepted: back to the results page.",
                    "headers": {"Location": {"schema": {"type": "string"}}}},
            "400": {"description": "Form refused: not confirmed.",
                    "content": {"text/html": TEXT}},
            "401": error("Missing or wrong admin token.", **either),
            "403": error("Wipeout is disabled (no admin token configured), or the form's CSRF "
                         "token is not this session's.", **either),
            "429": {
                **error("Too many wrong admin tokens from this client: refused without "
                        f"checking the token until its {minutes}-minute window ends.", **either),
                "headers": {"Retry-After": {"description": "Seconds until the client may try "
                                                           "again.",
                                            "schema": {"type": "integer"}}},
            },
            "503": ref("responses", "UnavailablePage"),
        },
    }


def dumps(document: dict) -> str:
    """Write document as the committed file is written: indented, one newline at the end."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(dumps(build()), end="")
