"""NIST SP 1500-100 V2 JSON: NIST's schema, issuer-scoped keys, units, bad input, render."""

import json
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings

from rome.feeds.formats import nist, parse_feed
from rome.feeds.snapshot import TOTAL, InvalidPayload, RaceStatus, UnitRef
from tests.helpers.format_cases import canonical, fixture, nist_snapshots

FILE = "atkinson-2020-general.json"
P = "GA-ATKINSON:"
PRESIDENT, TRUMP = P + "cc-president", P + "cs-president-trump"


def doc() -> dict:
    return json.loads(fixture("nist", FILE))


def read(body=None, **kwargs):
    return parse_feed("nist", body or fixture("nist", FILE), source="sos", **kwargs)


def votes(s, unit, candidate=TRUMP, vote_type=TOTAL, race=PRESIDENT) -> int:
    [n] = [n for n in s.counts if (n.race, n.unit, n.candidate, n.vote_type)
           == (race, P + unit, candidate, vote_type)]
    return n.votes


def test_the_schema_accepts_the_fixture_and_the_report_reads_as_written():
    nist.check_schema(doc())
    s = read()
    assert s.version == 1_604_685_950_000_001  # 2020-11-06T13:05:50-05:00, report 1 of 1
    assert s.feed_at == 1_604_685_950.0 and s.test is False
    assert s.election_date == "2020-11-03"  # the Election's StartDate, not the report's day
    assert s.units[:3] == (
        UnitRef(P + "gpu-ga", "Georgia", "state"),
        UnitRef(P + "gpu-atkinson", "Atkinson", "county", P + "gpu-ga"),
        UnitRef(P + "gpu-atkinson-pearson-county", "Pearson County", "precinct",
                P + "gpu-atkinson"))
    assert [(r.key, r.name, r.state, r.office) for r in s.races] == [
        (PRESIDENT, "President of the United States", "GA", "President"),
        (P + "bmc-referendum-a", "Statewide Referendum A", "GA", "")]
    assert [(c.first, c.last, c.party) for c in s.candidates] == [
        ("Donald", "Trump", "GOP"), ("Joseph", "Biden", "DEM"), ("Jo", "Jorgensen", "LIB"),
        ("", "YES", "NP"), ("", "NO", "NP")]
    assert RaceStatus(PRESIDENT, 4, 4) in s.statuses


def test_county_figures_and_precinct_rows_are_both_kept():
    s = read()
    assert votes(s, "gpu-atkinson") == 2300
    assert votes(s, "gpu-atkinson", vote_type="election_day") == 716
    precincts = [u.key.removeprefix(P) for u in s.units if u.level == "precinct"]
    # Precincts give votes by type only; their totals are the sums of those.
    assert [votes(s, p) for p in precincts] == [1026, 479, 342, 229]
    assert sum(votes(s, p) for p in precincts) == 2076
    assert sum(votes(s, p, vote_type="election_day") for p in precincts) == 492
    yes = P + "bms-referendum-a-yes"
    assert votes(s, "gpu-atkinson", yes, race=P + "bmc-referendum-a") == 1836


def test_ids_are_scoped_by_their_issuer():
    other = doc()
    other["IssuerAbbreviation"] = "GA-BACON"
    s, t = read(), read(json.dumps(other))
    assert {u.key for u in s.units}.isdisjoint(u.key for u in t.units)
    assert [u.key.split(":", 1)[1] for u in s.units] == [u.key.split(":", 1)[1] for u in t.units]


def test_calls_test_flag_and_sequence():
    d = doc()
    d["Election"][0]["Candidate"][1]["PostElectionStatus"] = "projected-winner"
    d["IsTest"], d["SequenceStart"], d["SequenceEnd"] = True, 2, 3
    s = read(json.dumps(d))
    assert s.test is True and s.version == 1_604_685_950_000_002
    assert RaceStatus(PRESIDENT, 4, 4, P + "cs-president-biden") in s.statuses
    assert read(version=9).version == 9


def test_a_unit_composed_of_one_above_it_does_not_become_its_child():
    d = doc()
    d["GpUnit"][1]["ComposingGpUnitIds"].append("gpu-ga")  # a cycle: GA in Atkinson in GA
    s = read(json.dumps(d))
    assert {u.key: u.parent for u in s.units}[P + "gpu-ga"] is None


def test_a_unit_of_type_other_takes_its_level_from_other_type():
    d = doc()
    d["GpUnit"][1].update(Type="other", OtherType="county")
    assert read(json.dumps(d)).units[1].level == "county"
    d["GpUnit"][1]["OtherType"] = "galaxy"
    with pytest.raises(InvalidPayload, match="no level Rome knows"):
        read(json.dumps(d))


def edit(change) -> str:
    d = doc()
    contest = d["Election"][0]["Contest"][0]
    change(d, contest, contest["ContestSelection"][0]["VoteCounts"][0])
    return json.dumps(d)


@pytest.mark.parametrize("body, reason", [
    ("{", "not valid JSON"),
    ("[" * 10_000 + "]" * 10_000, "nested too deeply"),
    ('{"Count": Infinity}', "not a number"),
    (edit(lambda d, c, n: d.pop("Issuer")), "V2 schema at \\(top\\): \"Issuer\" is a required"),
    (edit(lambda d, c, n: n.update(Count="12")),
     "Contest/0/ContestSelection/0/VoteCounts/0/Count: \"12\" is not of type"),
    (edit(lambda d, c, n: c.update({"@type": "ElectionResults.Race"})), "@type must be one of"),
    (edit(lambda d, c, n: d.update(GeneratedDate="2020-11-06")), "GeneratedDate: "),
    (edit(lambda d, c, n: d["GpUnit"][0].update(Type="galaxy")), "GpUnit/0/Type"),
    (edit(lambda d, c, n: n.update(Count=-5)), "negative"),
    (edit(lambda d, c, n: n.update(Count=1e12)), "absurd"),
    (edit(lambda d, c, n: n.update(Count=2.5)), "not a whole number"),
    (edit(lambda d, c, n: n.update(GpUnitId="gpu-mars")), "unknown unit 'gpu-mars'"),
    (edit(lambda d, c, n: n.update(Round=2)), "by round or device class are not supported"),
    (edit(lambda d, c, n: c["ContestSelection"][0].update(CandidateIds=["can-nobody"])),
     "unknown candidate 'can-nobody'"),
    (edit(lambda d, c, n: d["Election"][0]["Candidate"][0].update(PartyId="party-x")),
     "unknown 'party-x'"),
    (edit(lambda d, c, n: c.update(ElectionDistrictId="gpu-mars")), "unknown district"),
    (edit(lambda d, c, n: d["GpUnit"][0]["ComposingGpUnitIds"].append("gpu-mars")),
     "composed of unknown"),
    (edit(lambda d, c, n: d.update(SequenceStart=2)), "SequenceStart must be 1 to SequenceEnd"),
    (edit(lambda d, c, n: d.update(SequenceStart=0)), "SequenceStart must be 1 to SequenceEnd"),
    (edit(lambda d, c, n: d.update(IssuerAbbreviation=" ")), "IssuerAbbreviation must be"),
    (edit(lambda d, c, n: d.update(IssuerAbbreviation="GA:X")), "without ':'"),
    (edit(lambda d, c, n: d["GpUnit"].append(d["GpUnit"][0])), "listed twice"),
    (edit(lambda d, c, n: c["ContestSelection"][0]["VoteCounts"].append(n)), "counted twice"),
])
def test_bad_input_is_refused_with_a_reason(body, reason):
    with pytest.raises(InvalidPayload, match=reason):
        read(body)


def test_render_writes_what_parse_read_from_the_fixture():
    s = read()
    body = nist.render(s)
    nist.check_schema(json.loads(body))
    assert canonical(read(body)) == canonical(s)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nist_snapshots())
def test_render_passes_nists_schema_and_parse_gives_back_what_it_wrote(s):
    body = nist.render(s.validate(max_ahead=None))
    nist.check_schema(json.loads(body))
    assert canonical(parse_feed("nist", body, source=s.source, max_ahead=None)) == canonical(s)


def test_render_refuses_what_nist_cannot_say():
    s = read()
    with pytest.raises(ValueError, match="version = feed_at seconds"):
        nist.render(replace(s, feed_at=s.feed_at + 1))
    with pytest.raises(ValueError, match="one issuer"):
        nist.render(replace(s, units=(*s.units, UnitRef("XX:u", "U", "precinct"))))
