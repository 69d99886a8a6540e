"""Clarity detail.xml: real county and state files, name keys, hardened XML, render."""

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings

from rome.feeds.formats import clarity, parse_feed
from rome.feeds.formats._common import vote_type_slug
from rome.feeds.snapshot import TOTAL, Count, InvalidPayload, RaceStatus
from tests.helpers.format_cases import canonical, clarity_snapshots, fixture

FILES = ["clarify-county.xml", "clarify-precinct.xml", "ga_atkinson_precincts_11-3-trim.xml",
         "ga_bacon_precincts_11-3-trim.xml", "ga_counties_11-3-trim.xml"]
PRESIDENT = "president of the united states|1"
TRUMP = "donald j. trump (i) (rep)"


def read(name: str, **kwargs):
    return parse_feed("clarity", fixture("clarity", name), source="mc", **kwargs)


def votes(s, race, unit, candidate, vote_type=TOTAL) -> int:
    [n] = [n for n in s.counts if (n.race, n.unit, n.candidate, n.vote_type)
           == (race, unit, candidate, vote_type)]
    return n.votes


def below(s, race, candidate, vote_type=TOTAL) -> int:
    """Sum a candidate's rows under the file's top unit."""
    return sum(n.votes for n in s.counts if n.race == race and n.candidate == candidate
               and n.vote_type == vote_type and n.unit != s.units[0].key)


def test_atkinson_totals_exceed_their_precinct_rows_and_both_are_kept():
    s = read("ga_atkinson_precincts_11-3-trim.xml")
    top = "county:atkinson"
    assert [u.key for u in s.units] == [top] + [
        f"{top}/precinct:{p}" for p in ("pearson county", "axson", "willacoochee", "pearson city")]
    assert votes(s, PRESIDENT, top, TRUMP) == 2300
    assert votes(s, PRESIDENT, top, TRUMP, "election_day") == 716
    assert below(s, PRESIDENT, TRUMP, "election_day") == 492  # 235 + 194 + 0 + 63
    assert below(s, PRESIDENT, TRUMP) == 2076  # 224 fewer than the county's own total
    assert votes(s, PRESIDENT, f"{top}/precinct:axson", TRUMP) == 194 + 257 + 27 + 1
    biden = "joseph r. biden (dem)"
    assert (votes(s, PRESIDENT, top, biden), below(s, PRESIDENT, biden)) == (825, 708)
    assert {c.last: c.party for c in s.candidates if c.race == PRESIDENT} == {
        "Donald J. Trump (I) (Rep)": "GOP", "Joseph R. Biden (Dem)": "DEM",
        "Jo Jorgensen (Lib)": "LIB"}
    assert {n.vote_type for n in s.counts} == {TOTAL, "election_day", "advanced_voting",
                                               "absentee_by_mail", "provisional"}
    assert s.version == 1_604_685_950 == s.feed_at  # 11/6/2020 1:05:50 PM EST
    assert RaceStatus(PRESIDENT, 4, 4) in s.statuses
    assert s.election_date == "2020-11-03"  # <ElectionDate>11/3/2020</ElectionDate>


def test_a_contest_keyed_differently_in_two_files_is_one_race():
    atkinson, bacon = read("ga_atkinson_precincts_11-3-trim.xml"), read(
        "ga_bacon_precincts_11-3-trim.xml")  # Referendum A is key 24 in one, 20 in the other
    assert [r.key for r in atkinson.races] == [r.key for r in bacon.races] == [
        PRESIDENT, "statewide referendum a|1"]
    assert votes(bacon, "statewide referendum a|1", "county:bacon", "yes") == 2727
    assert votes(atkinson, "statewide referendum a|1", "county:atkinson", "yes") == 1836


def test_a_state_file_names_its_counties_as_county_files_name_themselves():
    s = read("ga_counties_11-3-trim.xml")
    assert s.units[0].key == "state:ga" and len(s.units) == 160
    assert "county:atkinson" in {u.key for u in s.units}
    race = "state senate district 1|1"
    assert [(r.key, r.state) for r in s.races] == [(race, "GA")]
    watson = "ben watson (i) (rep)"
    assert votes(s, race, "state:ga", watson) == 72192
    assert {c.party for c in s.candidates} == {"GOP"}  # party="NP", "(Rep)" in the name
    assert RaceStatus(race, 51, 51) in s.statuses


def test_arkansas_total_differs_from_its_vote_types_and_both_are_kept():
    s = read("clarify-county.xml")
    race, cotton = "u.s. senate|1", "tom cotton"
    assert votes(s, race, "state:ar", cotton) == 477734
    by_type = {t: votes(s, race, "state:ar", cotton, t)
               for t in ("election_day", "early_vote", "absentee", "provisional")}
    assert by_type == {"election_day": 248263, "early_vote": 200430, "absentee": 13319,
                       "provisional": 111}
    assert sum(by_type.values()) == 462123 == below(s, race, cotton)
    assert len(s.units) == 76 and s.races[0].state == "AR"
    assert RaceStatus(race, 2655, 2655) in s.statuses


def test_greenup_county_primary():
    s = read("clarify-precinct.xml")
    race = "us senator - republican|1"
    assert len(s.units) == 34 and s.units[0].name == "Greenup"
    assert votes(s, race, "county:greenup", "mitch mcconnell") == 1135
    assert votes(s, race, "county:greenup/precinct:ab", "mitch mcconnell", "election") == 35
    assert {c.party for c in s.candidates} == {"NP"}
    assert s.version == 1_400_631_561  # 5/20/2014 8:19:21 PM EDT


def test_version_given_wins_and_an_election_named_test_is_test_data():
    body = fixture("clarity", "ga_bacon_precincts_11-3-trim.xml")
    assert parse_feed("clarity", body, source="mc", version=42).version == 42
    test = body.replace(b"<ElectionName>", b"<ElectionName>TEST ")
    assert parse_feed("clarity", test, source="mc").test is True
    assert read("ga_bacon_precincts_11-3-trim.xml").test is False


def test_vote_type_names_become_keys():
    assert vote_type_slug("Election Day") == "election_day"
    assert vote_type_slug("Absentee by Mail Votes") == "absentee_by_mail"
    assert vote_type_slug("2nd Count") == "v_2nd_count"
    assert vote_type_slug("---") == "other"


BACON = fixture("clarity", "ga_bacon_precincts_11-3-trim.xml").decode()
LAUGHS = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;">]>'
          "<ElectionResult>&b;</ElectionResult>")
EXTERNAL = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            "<ElectionResult>&x;</ElectionResult>")
REMOTE_DTD = ('<?xml version="1.0"?><!DOCTYPE ElectionResult SYSTEM "http://127.0.0.1:9/x.dtd">'
              "<ElectionResult/>")


@pytest.mark.parametrize("body, reason", [
    ("<ElectionResult>", "not well-formed"),
    (LAUGHS, "refused: DTDForbidden"),
    (EXTERNAL, "refused: DTDForbidden"),
    (REMOTE_DTD, "refused: DTDForbidden"),
    ("<a>" * 10_000 + "</a>" * 10_000, "root element must be ElectionResult"),
    (BACON.replace("<Timestamp>", "<Timestamp>x"), "Timestamp is not"),
    (BACON.replace("EST</Timestamp>", "XYZ</Timestamp>"), "Timestamp is not"),
    (BACON.replace("11/5/2020", "13/5/2020"), "no real time"),
    (BACON.replace("<Region>Bacon</Region>", ""), "names no Region"),
    (BACON.replace('totalVotes="4018"', 'totalVotes="many"'), "must be a whole number"),
    (BACON.replace('totalVotes="4018"', 'totalVotes="-4018"'), "must be a whole number"),
    (BACON.replace('totalVotes="4018"', 'totalVotes="99999999999"'), "absurd"),
    (BACON.replace('totalVotes="4018"', ""), "has no totalVotes"),
    (BACON.replace('<Precinct name="Douglas" votes="431"', '<Precinct name="Elsewhere" votes="4"'),
     "counts a Precinct the file does not list"),
    (BACON.replace('text="YES"', 'text="NO"'), "listed twice"),
    (BACON.replace("<VoterTurnout", "<Turnout").replace("</VoterTurnout", "</Turnout"),
     "neither VoterTurnout nor ElectionVoterTurnout"),
])
def test_bad_input_is_refused_with_a_reason(body, reason):
    with pytest.raises(InvalidPayload, match=reason):
        parse_feed("clarity", body, source="mc")


@pytest.mark.parametrize("name", FILES)
def test_render_writes_what_parse_read_from_a_real_file(name):
    s = read(name)
    assert canonical(parse_feed("clarity", clarity.render(s), source="mc")) == canonical(s)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clarity_snapshots())
def test_parse_gives_back_what_render_wrote(s):
    body = clarity.render(s.validate(max_ahead=None))
    assert canonical(parse_feed("clarity", body, source=s.source, max_ahead=None)) == canonical(s)
    later = replace(s, version=s.version + 5)  # a version folder, passed in as the URL gives it
    assert parse_feed("clarity", body, source="mc", version=later.version,
                      max_ahead=None) == replace(
        parse_feed("clarity", body, source="mc", max_ahead=None), version=later.version)


def test_render_refuses_what_clarity_cannot_say():
    s = read("ga_bacon_precincts_11-3-trim.xml")
    row = next(n for n in s.counts if n.unit != "county:bacon" and n.vote_type == TOTAL)
    with pytest.raises(ValueError, match="sums of their vote types"):
        clarity.render(replace(s, counts=tuple(
            replace(n, votes=n.votes + 1) if n == row else n for n in s.counts)))
    with pytest.raises(ValueError, match="does not call races"):
        clarity.render(replace(s, statuses=(replace(s.statuses[0], winner=TRUMP),)))
    with pytest.raises(ValueError, match="whole-second"):
        clarity.render(replace(s, feed_at=s.feed_at + 0.5))
    extra = Count(PRESIDENT, "county:bacon/precinct:douglas", TRUMP, 1, "mail")
    with pytest.raises(ValueError, match="without a top figure"):
        clarity.render(replace(s, counts=(*s.counts, extra)))
    with pytest.raises(ValueError, match="XML 1.0 cannot carry"):
        clarity.render(replace(s, meta={"election_name": "November\x01"}))
