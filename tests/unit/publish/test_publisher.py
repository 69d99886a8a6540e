"""The published folder: the API's own JSON, only what changed rewritten, whole files only."""

from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path

import pytest

from rome.publish.files import publish_file
from rome.publish.publisher import INDEX, SOURCES, Publisher
from rome.store import db
from rome.store.tally import record_snapshots, wipeout
from tests.helpers.builders import national_snapshot, race_snapshot
from tests.helpers.webapp import record

RACES = 110


@pytest.fixture
def national(app, database_url):
    record(database_url, national_snapshot(RACES, counties=1))
    # A source's staleness moves with the clock: pinned, so that the API read a moment
    # after a publish (or a second publish) judges it the same.
    app.config["STALE_AFTER"] = 86_400.0
    return database_url


def publish(app, folder, race_ids=None):
    database = db.connect(app.config["DATABASE_URL"])
    try:
        with database.Session() as session:
            return Publisher(folder, app.config["STALE_AFTER"]).publish(session, race_ids)
    finally:
        database.engine.dispose()


def read(folder, name):
    data = (folder / name).read_bytes()
    assert gzip.decompress((folder / (name + ".gz")).read_bytes()) == data
    return json.loads(data)


def test_the_published_json_is_the_apis_state_for_state_race_for_race(app, client, national,
                                                                     tmp_path):
    folder = tmp_path / "public"
    done = publish(app, folder)
    index = client.get("/api/index").get_json()
    assert read(folder, INDEX) == index
    states = [state["state"] for state in index["states"]]
    assert len(states) > 40
    races = 0
    for state in states:
        api = client.get(f"/api/states/{state}").get_json()
        assert read(folder, f"states/{state}.json") == api
        for race in api["races"]:
            assert read(folder, f"races/{race['id']}.json") == race
            assert client.get(f"/api/races/{race['id']}").get_json() == race
            page = (folder / f"races/{race['id']}.html").read_text()
            assert f'data-race-json="{race["id"]}.json"' in page
            races += 1
    assert races == index["races"] == done.races
    # Served as Flask serves it: the same bytes.
    assert (folder / INDEX).read_bytes() == client.get("/api/index").get_data()


def test_one_changed_race_rewrites_that_race_its_state_the_index_and_sources(app, national,
                                                                           tmp_path):
    folder = tmp_path / "public"
    publish(app, folder)
    again = publish(app, folder)
    assert again.written == [] and again.removed == []  # nothing changed: nothing written
    race = read(folder, "races/1.json")
    record(app.config["DATABASE_URL"],
           race_snapshot("ap", 99, {101: 9_000, 102: 7_000}))
    done = publish(app, folder, {1})
    # AP was heard from: sources.json says when.
    assert sorted(done.written) == sorted(["races/1.json", f"states/{race['state']}.json",
                                           INDEX, SOURCES])
    assert read(folder, "races/1.json")["total_votes"] >= 16_000 > race["total_votes"]
    assert read(folder, "races/1.json")["leader"] == 101 != race["leader"]  # so the index moved


def test_sources_json_says_when_each_source_was_heard_from_as_the_api_does(app, client,
                                                                          national, tmp_path):
    folder = Path(app.config["PUBLISH_DIR"])  # the folder /live/ serves
    record(app.config["DATABASE_URL"], race_snapshot("mc", 1, {201: 20, 202: 25}))
    publish(app, folder)
    published = read(folder, SOURCES)["sources"]
    # Every source any race names, as /api/races names it and says it was heard from.
    api = {s["id"]: s for race in client.get("/api/races").get_json()["races"]
           for s in race["sources"]}
    assert {s["id"] for s in published} >= set(api) >= {"ap", "mc"}
    for source in published:
        if source["id"] in api:
            assert source == {key: api[source["id"]][key] for key in source}, source["id"]
    heard = {s["id"]: s["heard_at"] for s in published}
    assert heard["ap"] is not None and heard["mc"] is not None and heard["ap"] != heard["mc"]
    assert all(s["stale_after_seconds"] == 86_400.0 for s in published)
    # Served as Flask serves the folder, with its ETag, like any published file.
    served = client.get("/live/sources.json")
    assert served.status_code == 200 and served.get_json() == read(folder, SOURCES)
    assert client.get("/live/sources.json",
                      headers={"If-None-Match": served.headers["ETag"]}).status_code == 304


def test_a_publish_of_no_races_rewrites_sources_json_and_no_race(app, client, national,
                                                                 tmp_path):
    folder = tmp_path / "public"
    publish(app, folder)
    race = read(folder, "races/1.json")
    [ap] = [s for s in race["sources"] if s["id"] == "ap"]
    record(app.config["DATABASE_URL"], race_snapshot("ap", 99, {101: 9_000, 102: 7_000}))
    done = publish(app, folder, set())
    assert SOURCES in done.written
    assert not [name for name in done.written if name.startswith(("races/", "states/"))]
    # The race file is as it was; sources.json says AP was heard from since, as the API does.
    assert read(folder, "races/1.json") == race
    [now] = [s for s in read(folder, SOURCES)["sources"] if s["id"] == "ap"]
    [api] = [s for s in client.get("/api/races/1").get_json()["sources"] if s["id"] == "ap"]
    assert now["heard_at"] == api["heard_at"] > ap["heard_at"]
    # Nothing heard since: nothing rewritten.
    assert publish(app, folder, set()).written == []


def test_a_wipeout_unpublishes_every_figure(app, client, national, tmp_path):
    folder = tmp_path / "public"
    publish(app, folder)
    assert read(folder, "races/1.json")["total_votes"] > 0
    database = db.connect(app.config["DATABASE_URL"])
    with database.Session.begin() as session:
        wipeout(session)
    database.engine.dispose()
    publish(app, folder)
    # What is left is what the API still shows: races without a vote.
    index = client.get("/api/index").get_json()
    assert read(folder, INDEX) == index
    shown = {race["id"] for state in index["states"] for office in state["offices"]
             for race in office["races"]}
    assert {p.name for p in (folder / "races").glob("*.json")} == {f"{i}.json" for i in shown}
    for race_id in shown:
        race = read(folder, f"races/{race_id}.json")
        assert race == client.get(f"/api/races/{race_id}").get_json()
        assert race["total_votes"] == 0 and all(c["votes"] == 0 for c in race["candidates"])


def test_a_full_publish_unpublishes_races_and_states_rome_does_not_show(app, national,
                                                                       tmp_path):
    folder = tmp_path / "public"
    publish(app, folder)
    # As if published before a restore: a race and a state Rome no longer has.
    for name in ("races/123456.json", "races/123456.html", "states/ZZ.json"):
        publish_file(folder / name, b"{}")
    done = publish(app, folder)
    assert sorted(done.removed) == ["races/123456.html", "races/123456.json", "states/ZZ.json"]
    assert not list(folder.rglob("*123456*")) and not list(folder.rglob("ZZ*"))


def test_publishing_some_races_unpublishes_those_gone(app, national, tmp_path):
    folder = tmp_path / "public"
    publish(app, folder)
    done = publish(app, folder, {1, 999_999})  # 999999: no such race
    assert done.written == [] and done.races == 1
    assert (folder / "races/1.json").exists()


def test_a_reader_never_sees_a_partial_file_while_publishing_in_a_loop(tmp_path):
    path = tmp_path / "races" / "1.json"
    bodies = [json.dumps({"n": n, "pad": "x" * (50_000 + n)}).encode() for n in range(200)]
    publish_file(path, bodies[0])
    stop = threading.Event()
    seen: list[int] = []
    torn: list[bytes] = []

    def reader():
        while not stop.is_set():
            for name in (path, path.with_name("1.json.gz")):
                data = name.read_bytes()  # never missing: the rename replaces it in one step
                try:
                    data = gzip.decompress(data) if name.suffix == ".gz" else data
                    seen.append(json.loads(data)["n"])
                except (ValueError, EOFError, OSError):
                    torn.append(data[:100])

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    for body in bodies[1:]:
        assert publish_file(path, body)
    stop.set()
    for thread in threads:
        thread.join()
    assert torn == []
    assert len(seen) > 100 and len(set(seen)) > 5
    assert sorted(p.name for p in path.parent.iterdir()) == ["1.json", "1.json.gz"]
    assert path.stat().st_mode & 0o444 == 0o444  # readable by nginx, another user


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "index.json"
    publish_file(path, b"old\n")

    def fail(*_):
        raise OSError("disk full")

    monkeypatch.setattr("rome.publish.files.os.fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        publish_file(path, b"new\n")
    assert path.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json", "index.json.gz"]


def test_the_publisher_reads_postgresql_too(database, tmp_path):
    with database.Session.begin() as session:
        record_snapshots(session, [national_snapshot(30, counties=1)])
    with database.Session() as session:
        done = Publisher(tmp_path).publish(session)
    assert done.races == json.loads((tmp_path / INDEX).read_bytes())["races"] >= 30


def test_the_benchmarks_one_changed_race_rewrites_its_file_and_its_states_only(tmp_path):
    from rome.bench.static import files_one_race_rewrites

    done = files_one_race_rewrites(tmp_path, 120)
    assert done["races"] == 123  # and the catalog's three
    # JSON and page, states, index, sources, assets
    assert done["full_written"] == 2 * 123 + 50 + 1 + 1 + 2
    [race] = done["changed_races"]
    state = json.loads((tmp_path / "public" / "races" / f"{race}.json").read_bytes())["state"]
    assert sorted(done["written"]) == [f"races/{race}.json", SOURCES, f"states/{state}.json"]
