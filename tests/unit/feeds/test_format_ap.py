"""AP Elections API v2 JSON: real elex fixtures, keys, versions, bad input, render."""

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings

from rome.feeds.formats import ap, parse_feed, parse_feed_chunks
from rome.feeds.formats._common import byte_chunks
from rome.feeds.snapshot import InvalidPayload, RaceStatus, UnitRef
from tests.helpers.format_cases import ap_snapshots, canonical, fixture

FILES = ["20121106_ak_prez.json", "20151103_national-co.json", "20160201_district_results.json",
         "20160305_me_no_townships-ks_me.json", "20160426-ri_mail_ballots-de.json"]


def read(name: str, **kwargs):
    return parse_feed("ap", fixture("ap", name), source="ap", **kwargs)


def totals(snapshot, race: str, unit: str) -> dict[str, int]:
    return {n.candidate: n.votes for n in snapshot.counts if n.race == race and n.unit == unit}


def test_alaska_2012_president_real_response():
    s = read("20121106_ak_prez.json")
    assert s.version == 1_472_671_254_730_000  # "2016-08-31T19:20:54.730Z" in µs
    assert s.feed_at == 1_472_671_254.73 and s.test is False
    assert [(r.key, r.name, r.state) for r in s.races] == [("AK-0", "President", "AK")]
    assert s.election_date == "2012-11-06"  # its electionDate: the response is from 2016
    assert s.units == (UnitRef("AK:state", "Alaska", "state"),
                       UnitRef("AK:county:2001", "Alaska", "county", "AK:state"))
    assert totals(s, "AK-0", "AK:state") == {"6018": 136848, "6017": 102138, "6028": 6131,
                                            "6142": 2366}
    assert {c.last: c.party for c in s.candidates} == {"Romney": "GOP", "Obama": "DEM",
                                                      "Johnson": "LIB", "Stein": "GRN"}
    assert s.statuses == (RaceStatus("AK-0", 438, 438, "6018"),)  # Romney: winner "X"


def test_colorado_state_row_differs_from_its_counties_and_both_are_kept():
    s = read("20151103_national-co.json")
    race = "CO-7582"
    assert [r.name for r in s.races if r.key == race] == ["Proposition - BB Retain Revenue"]
    counties = [u for u in s.units if u.level == "county"]
    assert len(counties) == 64 and {u.parent for u in counties} == {"CO:state"}
    assert totals(s, race, "CO:state") == {"12480": 805617, "12481": 354769}
    summed = {"12480": 0, "12481": 0}
    for n in s.counts:
        if n.race == race and n.unit != "CO:state":
            summed[n.candidate] += n.votes
    assert summed == {"12480": 801232, "12481": 351144}  # AP's own counties: 4,385 Yes fewer
    assert totals(s, race, "CO:county:6001") == {"12480": 39099, "12481": 19063}  # Adams
    assert RaceStatus(race, 1973, 1973, "12480") in s.statuses


def test_initialization_response_names_races_and_candidates_without_counts():
    s = ap.parse(fixture("ap", "20151103_national_initialization.json"), source="ap").validate()
    assert [(r.key, r.office) for r in s.races] == [("KY-18525", "Governor"),
                                                    ("MS-25002", "Governor")]
    assert [(c.key, c.last, c.party) for c in s.candidates if c.race == "MS-25002"] == [
        ("31345", "Bryant", "GOP"), ("31581", "Gray", "DEM"), ("31832", "O'Hara", "RP")]
    assert s.units == () and s.counts == () and s.version == 1_447_102_280_156_000


def test_district_rows_and_primary_races():
    s = read("20160201_district_results.json")
    assert [(r.key, r.name) for r in s.races] == [("IA-16672", "President (Dem)"),
                                                  ("IA-16957", "President (GOP)")]
    assert [u.key for u in s.units] == ["IA:state", "IA:district:16013", "IA:district:16014",
                                        "IA:district:16016", "IA:district:16017",
                                        "IA:district:16018", "IA:district:16019"]
    assert totals(s, "IA-16957", "IA:state")["22324"] == 51666  # Cruz
    assert RaceStatus("IA-16957", 1681, 1681, "22324") in s.statuses


def test_test_responses_and_new_england_towns():
    s = read("20160305_me_no_townships-ks_me.json")
    assert s.test is True
    assert {u.key: u.level for u in s.units if u.key.startswith("ME")} == {
        "ME:state": "state", "ME:township:20942": "township"}
    assert [u.name for u in s.units if u.key.startswith("KS:county")] == [
        f"Congressional District {i}" for i in range(1, 5)]
    assert RaceStatus("KS-17180", 0, 3479) in s.statuses
    de = read("20160426-ri_mail_ballots-de.json")
    assert de.test is True and len(de.units) == 4
    assert totals(de, "DE-8316", "DE:state") == {"10496": 82473, "10503": 74224, "10504": 8247}


def test_a_reporting_unit_id_reused_at_another_level_is_another_unit():
    doc = json.loads(fixture("ap", "20160201_district_results.json"))
    race = doc["races"][1]
    county = dict(race["reportingUnits"][1], level="subunit", reportingunitName="Polk")
    race["reportingUnits"].append(county)  # same reportingunitID 16013 as the district row
    s = parse_feed("ap", json.dumps(doc), source="ap")
    assert {"IA:district:16013", "IA:county:16013"} <= {u.key for u in s.units}
    assert totals(s, "IA-16957", "IA:county:16013") == totals(s, "IA-16957", "IA:district:16013")
    assert len(totals(s, "IA-16957", "IA:county:16013")) == len(county["candidates"]) == 13


def test_version_is_the_response_timestamp_else_the_latest_update_else_given():
    doc = json.loads(fixture("ap", "20121106_ak_prez.json"))
    assert read("20121106_ak_prez.json", version=7).version == 7
    del doc["timestamp"]  # both rows were last updated at 2016-06-24T18:24:19Z
    assert parse_feed("ap", json.dumps(doc), source="ap").version == 1_466_792_659_000_000


def mutate(change):
    doc = json.loads(fixture("ap", "20121106_ak_prez.json"))
    change(doc, doc["races"][0]["reportingUnits"][0]["candidates"][0])
    return json.dumps(doc)


def deep(depth: int) -> str:
    return '{"races": [' + "[" * depth + "]" * depth + "]}"


BAD = [
    ("{", "not valid JSON"),
    (b"\xff\xfe{", "not UTF-8"),
    ("[]", "an object with a races list"),
    ('{"races": {}}', "an object with a races list"),
    ('{"races": [], "timestamp": NaN}', "not a number"),
    (deep(10_000), "nested too deeply"),
    (mutate(lambda d, c: c.pop("voteCount")), "missing field 'voteCount'"),
    (mutate(lambda d, c: c.update(voteCount="12")), "must be a whole number"),
    (mutate(lambda d, c: c.update(voteCount=-1)), "negative"),
    (mutate(lambda d, c: c.update(voteCount=3_000_000_000)), "absurd"),
    (mutate(lambda d, c: c.update(voteCount=1.5)), "must be a whole number"),
    (mutate(lambda d, c: c.update(candidateID=6018)), "candidateID must be text"),
    (mutate(lambda d, c: d["races"][0]["reportingUnits"][1].update(level="galaxy")),
     "unknown reporting-unit level"),
    (mutate(lambda d, c: d["races"][0]["reportingUnits"][1].update(statePostal="AZ")),
     "has 2 states"),
    (mutate(lambda d, c: d["races"][0]["reportingUnits"][1].pop("reportingunitID")),
     "has no reportingunitID"),
    (mutate(lambda d, c: d["races"][0].update(reportingUnits=[1])), "wrong type"),
    (mutate(lambda d, c: d.update(timestamp="yesterday")), "not an ISO 8601 time"),
    (mutate(lambda d, c: d.update(timestamp="2016-02-30T00:00:00Z")), "not a real time"),
    (mutate(lambda d, c: d["races"][0]["reportingUnits"][1]["candidates"].append(
        dict(c))), "counted twice"),
]


@pytest.mark.parametrize("body, reason", BAD)
def test_bad_input_is_refused_with_a_reason(body, reason):
    with pytest.raises(InvalidPayload, match=reason):
        parse_feed("ap", body, source="ap")


@pytest.mark.parametrize("name", FILES)
def test_render_writes_what_parse_read_from_a_real_response(name):
    s = read(name)
    assert canonical(parse_feed("ap", ap.render(s), source="ap")) == canonical(s)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ap_snapshots())
def test_parse_gives_back_what_render_wrote(s):
    # Round trips are about the format: a time past the clock is the pipeline's business.
    back = parse_feed("ap", ap.render(s), source=s.source, max_ahead=None)
    assert canonical(back) == canonical(s.validate(max_ahead=None))


def test_render_refuses_what_ap_cannot_say():
    s = read("20121106_ak_prez.json")
    with pytest.raises(ValueError, match="totals only"):
        ap.render(s.__class__(**{**s.__dict__, "counts": (s.counts[0].__class__(
            "AK-0", "AK:state", "6018", 1, "early"),)}))
    with pytest.raises(ValueError, match="feed_at must be version"):
        ap.render(s.__class__(**{**s.__dict__, "feed_at": 1.0}))


def test_a_2000_count_response_parses_in_milliseconds():
    doc = json.loads(fixture("ap", "20151103_national-co.json"))
    race = doc["races"][0]  # 65 units x 2 candidates; 16 copies under other ids
    doc["races"] = [dict(race, raceID=str(i)) for i in range(16)]
    body = json.dumps(doc).encode()
    best = min(_timed(body) for _ in range(5))
    assert len(parse_feed("ap", body, source="ap").counts) == 2080
    assert best < 0.1  # measured about 5 ms with validation; this catches quadratic work


def _timed(body: bytes) -> float:
    start = time.perf_counter()
    parse_feed("ap", body, source="ap")
    return time.perf_counter() - start


@pytest.fixture
def small_reads(monkeypatch):
    """Read responses 7 bytes at a time: every value of them is cut somewhere."""
    from rome.feeds.formats import _common

    monkeypatch.setattr(_common, "CHUNK_BYTES", 7)


@pytest.mark.parametrize("name", FILES)
def test_a_real_response_read_in_pieces_is_the_response_read_whole(name, small_reads):
    body = fixture("ap", name)
    whole = ap.parse(body, source="ap")
    assert ap.parse_chunks(byte_chunks(body, 5), source="ap") == whole
    assert parse_feed_chunks("ap", byte_chunks(body, 3), size=len(body), source="ap") == read(name)


@pytest.mark.parametrize("body, reason", BAD)
def test_bad_input_read_in_pieces_is_refused_with_the_same_reason(body, reason, small_reads):
    body = body.encode() if isinstance(body, str) else body
    with pytest.raises(InvalidPayload, match=reason):
        parse_feed_chunks("ap", byte_chunks(body, 5), size=len(body), source="ap")
