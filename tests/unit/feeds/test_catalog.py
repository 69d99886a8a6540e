import copy
import json

import pytest

from rome.feeds.catalog import CATALOG_FILE, default_catalog, parse_catalog


def test_default_catalog_has_the_original_races_and_formats():
    catalog = default_catalog()
    names = {race.name for race in catalog.races.values()}
    assert names == {"President of the United States", "Maricopa County Sheriff", "U.S. Senator"}
    assert {s.id: s.format for s in catalog.sources.values()} == {
        "ap": "ap", "mc": "clarity", "sos": "nist"}
    assert {s.code for s in catalog.sources.values()} == {"AP", "MC", "SOS"}
    lasts = {c.last for race in catalog.races.values() for c in race.candidates}
    assert lasts == {"Trump", "Clinton", "Johnson", "Stein", "Arpaio", "Penzone", "McCain",
                     "Kirkpatrick"}


def test_two_sources_report_one_race_under_their_own_keys():
    catalog = default_catalog()
    assert catalog.race_key("ap", "AZ-0") == catalog.race_key("sos", "AZSOS:contest-president")
    assert catalog.candidate_key("ap", "AZ-0", "1") == catalog.candidate_key(
        "sos", "AZSOS:contest-president", "AZSOS:sel-trump") == "catalog:101"
    # What the catalog does not name becomes a race and candidate of that source alone.
    assert catalog.race_key("ap", "NY-12") == "ap:NY-12"
    assert catalog.candidate_key("ap", "AZ-0", "999") == "ap:AZ-0:999"


def test_candidate_ids_are_unique_across_races():
    ids = [c.id for race in default_catalog().races.values() for c in race.candidates]
    assert len(ids) == len(set(ids))


def data():
    return copy.deepcopy(json.loads(CATALOG_FILE.read_text()))


def test_reused_candidate_id_is_refused():
    broken = data()
    broken["races"][1]["candidates"][0]["id"] = broken["races"][0]["candidates"][0]["id"]
    with pytest.raises(ValueError, match="used twice"):
        parse_catalog(broken)


def test_unknown_party_is_refused():
    broken = data()
    broken["races"][0]["candidates"][0]["party"] = "Dem"
    with pytest.raises(ValueError, match="unknown party"):
        parse_catalog(broken)


def test_a_feed_key_naming_two_races_is_refused():
    broken = data()
    broken["races"][2]["keys"]["ap"] = broken["races"][0]["keys"]["ap"]
    with pytest.raises(ValueError, match="names two races"):
        parse_catalog(broken)


def test_catalog_ids_leave_room_for_the_feeds_own():
    broken = data()
    broken["races"][0]["id"] = 1000
    with pytest.raises(ValueError, match="must be 1 to 999"):
        parse_catalog(broken)
