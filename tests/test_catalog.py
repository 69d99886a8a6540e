import copy
import json

import pytest

from rome.catalog import CATALOG_FILE, default_catalog, parse_catalog


def test_default_catalog_has_the_original_races():
    catalog = default_catalog()
    names = {race.name for race in catalog.races.values()}
    assert names == {"President of the United States", "Maricopa County Sheriff", "U.S. Senator"}
    assert {s.id for s in catalog.sources.values()} == {"ap", "mc", "sos"}
    lasts = {c.last for race in catalog.races.values() for c in race.candidates}
    assert lasts == {"Trump", "Clinton", "Johnson", "Stein", "Arpaio", "Penzone", "McCain",
                     "Kirkpatrick"}


def test_candidate_ids_are_unique_across_races():
    ids = [c.id for race in default_catalog().races.values() for c in race.candidates]
    assert len(ids) == len(set(ids))


def test_reused_candidate_id_is_refused():
    data = json.loads(CATALOG_FILE.read_text())
    broken = copy.deepcopy(data)
    broken["races"][1]["candidates"][0]["id"] = data["races"][0]["candidates"][0]["id"]
    with pytest.raises(ValueError, match="used twice"):
        parse_catalog(broken)


def test_unknown_party_is_refused():
    data = json.loads(CATALOG_FILE.read_text())
    data["races"][0]["candidates"][0]["party"] = "Dem"
    with pytest.raises(ValueError, match="unknown party"):
        parse_catalog(data)
