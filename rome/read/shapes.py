"""Declare the JSON the read path answers: one TypedDict per object the API serves.

results.py and history.py build their JSON as these types, and web/openapi.py
writes the API's schemas from them (``FooJson`` is the schema ``Foo``): a field
is added, renamed or described here, once.
"""

from __future__ import annotations

from typing import Annotated, TypedDict

from rome.feeds.snapshot import LEVELS
from rome.schema import Count, Meta, Moment

MAX_POINTS = 240  # a history's points at most, whatever its time span
PAYLOAD_SHOWN = 500  # characters of a rejected payload in a listing
MAX_PAGE = 500  # races per page of /api/races at most

Level = Annotated[str, Meta(enum=LEVELS)]
VotesById = dict[str, Count]  # keyed by candidate id: never given by position


class LevelDisagreementJson(TypedDict):
    """A source's top-level figure for a candidate that is not the sum of its units one
    level below. The top level is what is tallied; both are kept."""

    candidate_id: int
    level: Level
    votes: Count
    below_level: Level
    below_votes: Count
    difference: Annotated[int, Meta("votes minus below_votes.")]


class CandidateJson(TypedDict):
    """A candidate of a race, with the headline figure and each source's."""

    id: int
    first: str
    last: str
    party: Annotated[str, Meta("GOP, DEM, LIB, GRN, ...")]
    votes: Annotated[Count, Meta("Total votes per the race's primary source, at its top level.")]
    share: Annotated[float, Meta("Of the race's votes.", minimum=0, maximum=1)]
    by_source: Annotated[dict[str, Count], Meta(
        "Top-level total votes per source id, for the sources that give one.")]
    vote_types: Annotated[dict[str, Count], Meta(
        "Votes per vote type other than `total` (early, election day, ...), per the primary "
        "source at its top level; empty when the feed gives none.")]
    sources_differ: Annotated[bool, Meta(
        "Two sources with figures for the race give this candidate different ones.")]


class SourceJson(TypedDict):
    """A source that reports a race: its figure, progress, call and freshness there."""

    id: str
    name: str
    code: Annotated[str, Meta("As the original spelled sources: AP, MC, SOS.")]
    votes: Annotated[Count, Meta("The race's total votes per this source, at `level`.")]
    level: Annotated[Level | None, Meta(
        "The level its figures are read at: the topmost it reports. null: no figures yet.")]
    changes: Annotated[Count, Meta("Changes of its top-level figures applied (history rows).")]
    corrections: Annotated[Count, Meta("Of those, changes that lowered a figure.")]
    version: Annotated[Count | None, Meta("The feed version of its newest report on this race.")]
    feed_at: Annotated[Moment | None, Meta("The feed's own timestamp of that report.")]
    last_update_at: Annotated[Moment | None, Meta(
        "When its newest report on this race was applied; null: none yet.")]
    heard_at: Annotated[Moment | None, Meta(
        "When the source last reported anything, in any race: what staleness is judged by.")]
    stale: Annotated[bool, Meta(
        "The source has been silent, in every race, for longer than stale_after_seconds.")]
    stale_after_seconds: Annotated[float | None, Meta(
        "Silence after which a source counts as stale.")]
    stale_reason: Annotated[str | None, Meta(
        "Why a stale source is stale, for people: \"No report since 20:03:51 UTC; a source is"
        " stale after 40 s without one.\". Null when the source is not stale.")]
    rejected: Annotated[Count, Meta("Payloads rejected that claimed this source.")]
    units_reporting: Annotated[Count, Meta("Units of units_level with any votes.")]
    units_total: Annotated[Count, Meta("Units of units_level the feed lists.")]
    units_level: Annotated[Level | None, Meta(
        "The breakdown level: the one below the top, or the top when it is the only one.")]
    precincts_reporting: Annotated[Count | None, Meta("Where the feed says.")]
    precincts_total: Count | None
    winner: Annotated[int | None, Meta(
        "Candidate id of the source's call (AP's race call), if any.")]
    test: Annotated[bool, Meta("The feed marks its report as test data.")]
    level_disagreements: list[LevelDisagreementJson]


class HeardSourceJson(TypedDict):
    """A source, and when it last reported: what a page judges its freshness by, with its own
    clock, while no race file changes."""

    id: str
    name: str
    code: Annotated[str, Meta("As the original spelled sources: AP, MC, SOS.")]
    heard_at: Annotated[Moment | None, Meta(
        "When the source last reported anything, in any race (as each race's sources give "
        "it); null: never.")]
    stale_after_seconds: Annotated[float | None, Meta(
        "Silence after which a source counts as stale.")]


class HeardSourcesJson(TypedDict):
    """Every source a race can name, and when each was last heard from: the published
    folder's sources.json, rewritten at every publish."""

    sources: Annotated[list[HeardSourceJson], Meta("In the one source order races use.")]


class RaceJson(TypedDict):
    """A race: its headline figures, per its primary source, and every source's beside them."""

    id: int
    name: str
    state: Annotated[str, Meta("Postal code where the feed gives one.")]
    office: str
    election_date: Annotated[str | None, Meta(
        "The day of the race's election, as the first feed that named the race with one gave"
        " it; null where none did.", format="date")]
    total_votes: Annotated[Count, Meta("Per the primary source.")]
    primary_source: Annotated[str | None, Meta(
        "The source the headline figures are read from: the first, in the catalog's order, "
        "with figures for the race.")]
    last_update_at: Moment | None
    leader: Annotated[int | None, Meta("Candidate id; null when tied or no votes.")]
    winner: Annotated[int | None, Meta(
        "Candidate id the race is called for, if a source called it.")]
    called_by: Annotated[str | None, Meta(
        "Id of the source whose call `winner` is (the first, in `sources` order, that called "
        "the race).")]
    test: Annotated[bool, Meta("A source marks its figures as test data.")]
    sources_disagree: Annotated[bool, Meta("Two sources give a candidate different figures.")]
    candidates: list[CandidateJson]
    sources: Annotated[list[SourceJson], Meta(
        "Every source that reports the race, primary first when it is listed first.")]


class RaceListJson(TypedDict):
    """The races asked for (every race unless filtered or paged), and how many payloads were
    rejected."""

    races: list[RaceJson]
    rejected: Annotated[Count, Meta("Rejected payloads, all sources.")]
    total: Annotated[Count, Meta("Races that match the filters, on every page.")]
    limit: Annotated[int | None, Meta(
        "Races per page, as asked; null: no limit was asked, every match is listed.",
        minimum=1, maximum=MAX_PAGE)]
    offset: Annotated[Count, Meta("Matches skipped before the first race listed.")]
    next: Annotated[str | None, Meta(
        "Where the next page is (same filters and limit); null on the last page.")]
    previous: Annotated[str | None, Meta(
        "Where the previous page is; null on the first page.")]


class IndexRaceJson(TypedDict):
    """One race in the national index: enough to find it and see where it stands."""

    id: int
    name: str
    leader: Annotated[str | None, Meta(
        "The leading candidate's name (first and last), per the race's primary source; null "
        "when tied or no votes.")]
    reporting: Annotated[float | None, Meta(
        "Percent reporting, per the primary source: its precincts where it gives them, else "
        "its units of the breakdown level with votes; rounded down to a tenth. Null: no "
        "figures yet.", minimum=0, maximum=100)]
    called: Annotated[bool, Meta("A source has called the race.")]


class IndexOfficeJson(TypedDict):
    """One office of a state, with its races in id order."""

    office: Annotated[str, Meta("As the feeds name it; \"\" where none did.")]
    races: list[IndexRaceJson]


class IndexStateJson(TypedDict):
    """One state's races, by office."""

    state: Annotated[str, Meta("Postal code where the feeds give one; \"\" where none did.")]
    races: Annotated[Count, Meta("Races in the state.")]
    called: Annotated[Count, Meta("Of those, called by a source.")]
    offices: list[IndexOfficeJson]


class NationalIndexJson(TypedDict):
    """Every race, small: by state, then office, for finding races without loading them all."""

    races: Annotated[Count, Meta("Races listed, in every state.")]
    states: Annotated[list[IndexStateJson], Meta("In order of their postal code.")]


class StateRacesJson(TypedDict):
    """Every race of one state, in id order, as /api/races lists them."""

    state: str
    offices: Annotated[list[str], Meta("The offices of the state's races, in order.")]
    races: list[RaceJson]
    rejected: Annotated[Count, Meta("Rejected payloads, all sources.")]


class HistoryPointJson(TypedDict):
    """Every candidate's running total after the changes of one bucket of time."""

    at: Annotated[Moment, Meta("When the bucket's newest change was applied.")]
    votes: Annotated[VotesById, Meta(
        "Each candidate's running total after this point's changes, keyed by candidate id.")]


class RaceHistoryJson(TypedDict):
    """A race's cumulative votes per candidate over time, per its primary source."""

    race_id: int
    candidate_ids: Annotated[list[int], Meta(
        "Every candidate of the race, in the order the page lists them; each votes object has "
        "a key for each.")]
    source: Annotated[str | None, Meta(
        "The source whose top-level totals these are (the race's primary source); null: no "
        "figures yet.")]
    level: Annotated[Level | None, Meta(
        "The level of the source's units these totals are read at: its topmost (`state`, "
        "`county`...); null: no figures yet.")]
    since: Moment | None
    bucket_seconds: Annotated[int, Meta(minimum=1)]
    votes_at_since: Annotated[VotesById, Meta(
        "Each candidate's total as of `since`, so a client drawing from `since` on needs "
        "nothing earlier (all zero without `since`). Keyed by candidate id.")]
    points: Annotated[list[HistoryPointJson], Meta(max_items=MAX_POINTS)]


class RejectedJson(TypedDict):
    """A payload Rome refused, with the reason."""

    id: int
    source: Annotated[str | None, Meta("The source it claimed; null when none could be read.")]
    reason: str
    payload: Annotated[str, Meta(f"The first {PAYLOAD_SHOWN} characters.")]
    received_at: Moment | None


class RejectedListJson(TypedDict):
    """The newest rejected payloads, and the count of all of them."""

    rejected: list[RejectedJson]
    count: Count


class OriginalRowJson(TypedDict):
    """The original nero's `race.Item`: one per race, candidate and source."""

    raceID: Annotated[str, Meta(pattern="^[0-9]+$")]
    raceName: str
    firstName: str
    lastName: str
    party: str
    candidateID: Annotated[str, Meta(pattern="^[0-9]+$")]
    voteCount: Annotated[int, Meta("An int32, as the original's.", minimum=0, maximum=2**31 - 1)]
    source: Annotated[str, Meta(
        "The source's code: AP, MC, SOS (a replayed feed's id in capitals).")]
