"""The feed server: AP's, Clarity's and NIST's semantics over real fixtures, faults, the log."""

import http.client
import io
import json
import threading
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from email.utils import formatdate
from urllib.parse import parse_qs, urlsplit

import pytest
from defusedxml.ElementTree import fromstring

from rome.feeds.feednight import derive_night
from rome.feeds.feedserver import FeedServer, FeedServerError
from rome.feeds.formats import parse_feed
from rome.feeds.snapshot import SOURCE_ID
from tests.helpers.paths import FIXTURES

AP_CO = FIXTURES / "ap" / "20151103_national-co.json"  # four Colorado races, 64 counties
CLARITY = [FIXTURES / "clarity" / name for name in (
    "ga_counties_11-3-trim.xml", "ga_atkinson_precincts_11-3-trim.xml",
    "ga_bacon_precincts_11-3-trim.xml")]
NIST = FIXTURES / "nist" / "atkinson-2020-general.json"
STATE = "/clarity/GA/105369/"


def get(url: str, headers: dict | None = None, timeout: float = 5.0):
    """Return (status, headers, body) of a GET, errors included."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def ap_json(url: str, **headers) -> dict:
    status, _, body = get(url, headers)
    assert status == 200, body
    return json.loads(body)


def counts_by_race(doc_or_body) -> dict[str, set]:
    body = doc_or_body if isinstance(doc_or_body, bytes) else json.dumps(doc_or_body).encode()
    snapshot = parse_feed("ap", body, source="ap", max_ahead=None)
    out: dict[str, set] = {r.key: set() for r in snapshot.races}
    for n in snapshot.counts:
        out[n.race].add((n.unit, n.candidate, n.votes))
    return out


@pytest.fixture
def ap_server():
    with FeedServer(ap=[AP_CO]) as server:
        yield server


def first_url(server: FeedServer) -> str:
    return f"{server.base_url}/ap/v2/elections/2015-11-03?format=json&level=ru&statePostal=CO"


# --- AP ------------------------------------------------------------------------------------

def test_ap_full_answer_carries_an_absolute_nextrequest_with_mindatetime(ap_server):
    doc = ap_json(first_url(ap_server))
    assert len(doc["races"]) == 4 and doc["isTruncated"] is False
    next_url = urlsplit(doc["nextrequest"])
    assert f"{next_url.scheme}://{next_url.netloc}" == ap_server.base_url
    query = parse_qs(next_url.query)
    # The other parameters are kept; minDateTime is the answer's own time.
    assert query["format"] == ["json"] and query["level"] == ["ru"]
    assert query["statePostal"] == ["CO"] and query["minDateTime"] == [doc["timestamp"]]
    # lastUpdated is the server's, per race and per unit, never after the answer.
    for race in doc["races"]:
        assert race["lastUpdated"] <= doc["timestamp"]
        assert all(row["lastUpdated"] <= doc["timestamp"] for row in race["reportingUnits"])


def test_ap_answer_with_nothing_changed_has_no_races(ap_server):
    doc = ap_json(first_url(ap_server))
    again = ap_json(doc["nextrequest"])
    assert again["races"] == [] and again["isTruncated"] is False
    sent = urlsplit(doc["nextrequest"])
    assert ap_server.requests[-1].target == f"{sent.path}?{sent.query}"  # as it was given
    assert again["nextrequest"] != doc["nextrequest"]  # a newer minDateTime


def test_ap_incremental_answer_carries_only_the_races_that_changed(tmp_path):
    first = json.loads(AP_CO.read_bytes())
    second = json.loads(AP_CO.read_bytes())
    second["timestamp"] = "2015-11-10T19:00:00.000Z"
    row = second["races"][2]["reportingUnits"][0]
    row["candidates"][0]["voteCount"] += 1000
    files = []
    for name, doc in (("v1.json", first), ("v2.json", second)):
        files.append(tmp_path / name)
        files[-1].write_text(json.dumps(doc))
    with FeedServer(ap=files) as server:
        doc = ap_json(first_url(server))
        server.advance()
        changed = ap_json(doc["nextrequest"])
        assert [r["raceID"] for r in changed["races"]] == [second["races"][2]["raceID"]]
        unit = changed["races"][0]["reportingUnits"][0]
        assert unit["lastUpdated"] > doc["timestamp"]  # only the unit that moved is newer
        assert all(r["lastUpdated"] <= doc["timestamp"]
                   for r in changed["races"][0]["reportingUnits"][1:])
        assert ap_json(changed["nextrequest"])["races"] == []


def follow(url: str) -> tuple[list[dict], str, int]:
    """Follow one answer's truncated chain to its end: (races, next request, pages)."""
    races, pages = [], 0
    while True:
        doc = ap_json(url)
        pages += 1
        races += doc["races"]
        url = doc["nextrequest"]
        if not doc["isTruncated"]:
            return races, url, pages


@pytest.mark.parametrize("page_size", [None, 1, 3])
def test_incremental_answers_merged_equal_the_full_answer_at_the_same_moment(page_size):
    with FeedServer(ap=[AP_CO], steps=5, page_size=page_size) as server:
        races, url, _ = follow(first_url(server))
        state = counts_by_race({"timestamp": "2015-11-10T18:55:18.832Z", "races": races})
        for _ in range(5):
            server.advance()
            races, url, _ = follow(url)
            if races:
                state.update(counts_by_race({"timestamp": "2015-11-10T18:55:18.832Z",
                                             "races": races}))
            full, _, _ = follow(first_url(server))
            assert state == counts_by_race({"timestamp": "2015-11-10T18:55:18.832Z",
                                            "races": full})
        # The night ended on the recorded file itself.
        assert state == counts_by_race(AP_CO.read_bytes())


def test_truncated_pages_complete_and_hold_one_moment():
    with FeedServer(ap=[AP_CO], page_size=1) as server:
        flags, races = [], []
        doc = ap_json(first_url(server))
        flags.append(doc["isTruncated"])
        races += doc["races"]
        server.advance()  # mid-chain: the pages stay those of the first page's moment
        while doc["isTruncated"]:
            doc = ap_json(doc["nextrequest"])
            flags.append(doc["isTruncated"])
            races += doc["races"]
        assert flags == [True, True, True, False]
        assert len({r["raceID"] for r in races}) == 4
        query = parse_qs(urlsplit(doc["nextrequest"]).query)
        assert "continuation" not in query and "minDateTime" in query
        # The change made mid-chain comes in the next answer.
        changed, _, pages = follow(doc["nextrequest"])
        assert len(changed) == 4 and pages == 4


def test_ap_key_is_required_when_configured():
    with FeedServer(ap=[AP_CO], api_key="secret") as server:
        status, headers, body = get(first_url(server))
        assert status == 401 and fromstring(body).findtext("Code") == "401"
        assert get(first_url(server), {"x-api-key": "wrong"})[0] == 401
        assert get(first_url(server), {"x-api-key": "secret"})[0] == 200
        assert get(first_url(server) + "&apiKey=secret")[0] == 200


def test_ap_quota_answers_403_with_an_xml_body_even_when_json_was_asked():
    now = [1_000_000.0]
    with FeedServer(ap=[AP_CO], requests_per_minute=3, clock=lambda: now[0]) as server:
        assert [get(first_url(server))[0] for _ in range(3)] == [200, 200, 200]
        status, headers, body = get(first_url(server))
        assert status == 403 and headers["Content-Type"].startswith("application/xml")
        error = fromstring(body)
        assert error.tag == "Error" and error.findtext("Code") == "403"
        assert error.findtext("Message") == "Over quota limit."
        now[0] += 30
        assert get(first_url(server))[0] == 403  # still three answers in the last minute
        now[0] += 31
        assert get(first_url(server))[0] == 200  # the window moved on


def test_ap_filters_by_state_office_and_race(ap_server):
    base = f"{ap_server.base_url}/ap/v2/elections/2015-11-03?format=json"
    assert len(ap_json(base + "&statePostal=KY,CO")["races"]) == 4
    assert ap_json(base + "&statePostal=KY")["races"] == []
    assert [r["raceID"] for r in ap_json(base + "&raceID=7582")["races"]] == ["7582"]
    assert len(ap_json(base + "&officeID=I")["races"]) == 4
    assert ap_json(base + "&officeID=G")["races"] == []


def test_bad_mindatetime_and_format_are_400s(ap_server):
    assert get(first_url(ap_server) + "&minDateTime=yesterday")[0] == 400
    base = f"{ap_server.base_url}/ap/v2/elections/2015-11-03"
    assert get(base + "?format=xml")[0] == 400
    assert get(f"{ap_server.base_url}/ap/v2/elections/2099-01-01?format=json")[0] == 404


# --- Clarity ---------------------------------------------------------------------------------

def unzip(body: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.namelist() == ["detail.xml"]
        return archive.read("detail.xml")


def counties(server: FeedServer) -> dict[str, tuple[str, str, str]]:
    version = get(server.base_url + STATE + "current_ver.txt")[2].decode()
    status, _, body = get(f"{server.base_url}{STATE}{version}/json/en/electionsettings.json")
    assert status == 200
    rows = json.loads(body)["settings"]["electiondetails"]["participatingcounties"]
    return {name: (cid, cver, when) for name, cid, cver, when in (r.split("|") for r in rows)}


def test_clarity_state_versions_zips_and_county_list():
    with FeedServer(clarity=CLARITY) as server:
        version = get(server.base_url + STATE + "current_ver.txt")[2].decode()
        status, headers, body = get(f"{server.base_url}{STATE}{version}/reports/detailxml.zip")
        assert status == 200 and headers["Content-Type"] == "application/zip"
        state = parse_feed("clarity", unzip(body), source="ga", max_ahead=None)
        assert [u.name for u in state.units if u.parent is None] == ["GA"]
        listed = counties(server)
        assert set(listed) == {"Atkinson", "Bacon"}
        cid, cver, when = listed["Atkinson"]
        assert parse_feed("clarity", unzip(get(
            f"{server.base_url}/clarity/GA/Atkinson/{cid}/{cver}/reports/detailxml.zip")[2]),
            source="atk", max_ahead=None).units[0].name == "Atkinson"
        assert when.endswith(("EST", "EDT"))


def test_clarity_only_counties_whose_file_changed_get_a_new_version():
    with FeedServer(clarity=CLARITY, steps=4) as server:
        before = counties(server)
        old_version = get(server.base_url + STATE + "current_ver.txt")[2].decode()
        cid, cver, _ = before["Atkinson"]
        old_zip = get(f"{server.base_url}/clarity/GA/Atkinson/{cid}/{cver}/reports/detailxml.zip")
        server.advance()
        after = counties(server)
        # Atkinson has four precincts reporting one a step; Bacon's one reported at once.
        assert int(after["Atkinson"][1]) > int(cver)
        assert after["Bacon"][1] == before["Bacon"][1]
        assert get(server.base_url + STATE + "current_ver.txt")[2].decode() != old_version
        # Old versions stay served, unchanged.
        again = get(f"{server.base_url}/clarity/GA/Atkinson/{cid}/{cver}/reports/detailxml.zip")
        assert again[0] == 200 and again[2] == old_zip[2]
        assert get(f"{server.base_url}{STATE}{old_version}/json/en/electionsettings.json")[0] == 200
        for _ in range(5):
            server.advance()
        final = counties(server)
        assert final["Bacon"][1] == before["Bacon"][1]
        # The night ends on the recorded file, byte for byte.
        cid, cver, _ = final["Atkinson"]
        assert unzip(get(f"{server.base_url}/clarity/GA/Atkinson/{cid}/{cver}/reports/"
                         "detailxml.zip")[2]) == CLARITY[1].read_bytes()


def test_clarity_versions_of_a_restarted_server_count_on_from_the_last():
    now = [1_700_000_000.0]
    with FeedServer(clarity=CLARITY, clock=lambda: now[0]) as server:
        for _ in range(4):
            server.advance()  # four versions within one second
        last = int(get(server.base_url + STATE + "current_ver.txt")[2])
    now[0] += 1
    with FeedServer(clarity=CLARITY, clock=lambda: now[0]) as server:
        assert int(get(server.base_url + STATE + "current_ver.txt")[2]) > last


def test_clarity_firewall_refuses_user_agents_by_name():
    with FeedServer(clarity=CLARITY, ap=[AP_CO], refuse_agents=("Python-urllib",)) as server:
        url = server.base_url + STATE + "current_ver.txt"
        assert get(url)[0] == 403  # urllib says Python-urllib/3.11
        assert get(url, {"User-Agent": "Mozilla/5.0 (Macintosh) Safari/605.1.15"})[0] == 200
        assert get(first_url(server))[0] == 200  # AP has no such firewall


def test_clarity_unknown_paths_are_404():
    with FeedServer(clarity=CLARITY) as server:
        base = server.base_url
        for path in (STATE + "999/reports/detailxml.zip", STATE + "current.txt",
                     "/clarity/GA/Fulton/105999/current_ver.txt", "/clarity/XX/1/current_ver.txt",
                     STATE + "250000/reports/summary.zip", "/elsewhere"):
            assert get(base + path)[0] == 404, path
        cid = counties(server)["Bacon"][0]
        version = get(f"{base}/clarity/GA/Bacon/{cid}/current_ver.txt")[2].decode()
        assert get(f"{base}/clarity/GA/Bacon/{cid}/{version}/json/en/electionsettings.json"
                   )[0] == 404  # a county lists no counties


def test_clarity_county_files_need_their_state():
    with pytest.raises(FeedServerError, match="clarity-state"):
        FeedServer(clarity=CLARITY[1:])
    with FeedServer(clarity=CLARITY[1:], clarity_state="GA") as server:
        assert get(f"{server.base_url}/clarity/GA/Bacon/105371/current_ver.txt")[0] == 200


# --- NIST ------------------------------------------------------------------------------------

def test_nist_etag_last_modified_and_304s():
    with FeedServer(nist=[NIST]) as server:
        url = f"{server.base_url}/nist/atkinson-2020-general.json"
        status, headers, body = get(url)
        etag, modified = headers["ETag"], headers["Last-Modified"]
        assert status == 200 and etag.startswith('"') and not etag.startswith("W/")
        parse_feed("nist", body, source="sos", max_ahead=None)
        status, headers, body = get(url, {"If-None-Match": etag})
        assert (status, body, headers["ETag"]) == (304, b"", etag)
        assert get(url, {"If-Modified-Since": modified})[0] == 304
        old = formatdate(time.time() - 3600, usegmt=True)
        assert get(url, {"If-Modified-Since": old})[0] == 200
        server.advance()
        status, headers, _ = get(url, {"If-None-Match": etag})
        assert status == 200 and headers["ETag"] != etag


# --- faults ----------------------------------------------------------------------------------

def test_fault_slow_answers_after_the_client_timeout(ap_server):
    ap_server.slow_seconds = 1.0
    ap_server.fault("slow")
    started = time.monotonic()
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        get(first_url(ap_server), timeout=0.3)
    assert time.monotonic() - started < 1.0
    assert get(first_url(ap_server))[0] == 200  # one request only
    ap_server.fault("slow", seconds=0.5)  # a delay of its own: a patient client gets the answer
    started = time.monotonic()
    assert get(first_url(ap_server), timeout=5)[0] == 200
    assert 0.5 <= time.monotonic() - started < 1.0


def test_a_stalled_endpoint_stalls_every_request_until_its_faults_are_cleared(ap_server):
    """`rome chaos`'s feed_stall: one feed slow for a window, the others untouched."""
    path = urlsplit(first_url(ap_server)).path
    ap_server.fault("slow", path, count=10_000, seconds=5.0)
    ap_server.fault("500", "/nist/")
    for _ in range(2):
        with pytest.raises((TimeoutError, urllib.error.URLError)):
            get(first_url(ap_server), timeout=0.3)
    assert ap_server.clear_faults(path) == 1
    started = time.monotonic()
    assert get(first_url(ap_server))[0] == 200
    assert time.monotonic() - started < 1.0
    assert ap_server.clear_faults() == 1  # the other feed's fault was kept until now


def test_stop_cuts_a_slow_answer_short():
    server = FeedServer(ap=[AP_CO], slow_seconds=30.0)
    server.start()
    server.fault("slow")
    outcome = []
    client = threading.Thread(target=lambda: outcome.append(get(first_url(server), timeout=20)))
    started = time.monotonic()
    client.start()
    while not server.requests:
        time.sleep(0.01)
    server.stop()
    client.join(10)
    assert not client.is_alive() and time.monotonic() - started < 5
    assert outcome[0][0] == 200  # answered at once, not after 30 s


def test_fault_500_404_and_count(ap_server):
    ap_server.fault("500", count=2)
    assert [get(first_url(ap_server))[0] for _ in range(3)] == [500, 500, 200]
    ap_server.fault("404")
    assert [get(first_url(ap_server))[0] for _ in range(2)] == [404, 200]


def test_fault_only_on_its_path_prefix():
    with FeedServer(ap=[AP_CO], nist=[NIST]) as server:
        server.fault("500", "/nist/")
        assert get(first_url(server))[0] == 200
        assert get(f"{server.base_url}/nist/atkinson-2020-general.json")[0] == 500


def test_fault_refuse_closes_without_answering(ap_server):
    ap_server.fault("refuse")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)):
        get(first_url(ap_server))
    assert get(first_url(ap_server))[0] == 200


def test_fault_truncate_sends_less_than_its_content_length(ap_server):
    ap_server.fault("truncate")
    split = urlsplit(first_url(ap_server))
    connection = http.client.HTTPConnection(split.netloc, timeout=5)
    connection.request("GET", f"{split.path}?{split.query}")
    response = connection.getresponse()
    length = int(response.headers["Content-Length"])
    with pytest.raises(http.client.IncompleteRead) as caught:
        response.read()
    assert 0 < len(caught.value.partial) < length
    connection.close()


def test_fault_badzip_spoils_only_a_zip():
    with FeedServer(clarity=CLARITY) as server:
        server.fault("badzip")
        assert get(server.base_url + STATE + "current_ver.txt")[0] == 200  # not a zip: untouched
        version = get(server.base_url + STATE + "current_ver.txt")[2].decode()
        status, _, body = get(f"{server.base_url}{STATE}{version}/reports/detailxml.zip")
        assert status == 200
        with pytest.raises(zipfile.BadZipFile):
            unzip(body)
        assert unzip(get(f"{server.base_url}{STATE}{version}/reports/detailxml.zip")[2])


def test_fault_quota_on_demand(ap_server):
    ap_server.fault("quota")
    status, headers, body = get(first_url(ap_server))
    assert status == 403 and fromstring(body).findtext("Message") == "Over quota limit."
    assert get(first_url(ap_server))[0] == 200


def test_unknown_fault_is_refused(ap_server):
    with pytest.raises(FeedServerError, match="unknown fault"):
        ap_server.fault("flaky")


# --- the request log, bad input, the derived and the simulated nights -----------------------------

def test_every_request_is_logged(ap_server):
    before = time.time()
    get(first_url(ap_server), {"If-None-Match": '"abc"', "x-api-key": "k"})
    get(ap_server.base_url + "/nowhere?x=1")
    log = ap_server.requests
    assert [(r.method, r.path) for r in log] == [
        ("GET", "/ap/v2/elections/2015-11-03"), ("GET", "/nowhere")]
    assert log[0].query == {"format": "json", "level": "ru", "statePostal": "CO"}
    assert log[0].target == "/ap/v2/elections/2015-11-03?format=json&level=ru&statePostal=CO"
    assert log[0].header("If-None-Match") == '"abc"' and log[0].header("X-API-Key") == "k"
    assert before <= log[0].time <= log[1].time <= time.time()


def test_bad_files_and_options_are_clear_errors(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(FeedServerError, match="broken.json: not a ap feed file"):
        FeedServer(ap=[bad])
    with pytest.raises(FeedServerError, match="nothing to serve"):
        FeedServer()
    with pytest.raises(FeedServerError, match="page size"):
        FeedServer(ap=[AP_CO], page_size=0)


def test_derived_night_grows_to_the_recorded_file():
    night = derive_night("clarity", CLARITY[1].read_bytes(), 4)
    assert night[-1] == CLARITY[1].read_bytes() and len(set(night)) == 4
    totals = [sum(n.votes for n in parse_feed("clarity", body, source="c", max_ahead=None).counts
                  if n.vote_type == "total") for body in night]
    assert totals == sorted(totals) and totals[0] < totals[-1]
    # A file whose one unit reports at once is the same bytes all night.
    assert set(derive_night("clarity", CLARITY[2].read_bytes(), 4)) == {CLARITY[2].read_bytes()}


def test_simulated_night_moves_with_the_clock():
    now = [1_800_000_000.0]
    with FeedServer(simulated=True, interval=2.0, update_chance=1.0,
                    clock=lambda: now[0]) as server:
        urls = dict((fmt, url) for fmt, url in server.urls())
        assert set(urls) == {"ap", "clarity", "nist"}
        doc = ap_json(urls["ap"])
        assert {r["raceID"] for r in doc["races"]} and doc["isTruncated"] is False
        version = get(urls["clarity"] + "current_ver.txt")[2]
        etag = get(urls["nist"])[1]["ETag"]
        now[0] += 600  # five minutes into the night: every unit has figures
        assert ap_json(doc["nextrequest"])["races"]
        assert get(urls["clarity"] + "current_ver.txt")[2] != version
        assert get(urls["nist"], {"If-None-Match": etag})[0] == 200



def post(url: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def log_of(server: FeedServer) -> list[dict]:
    return json.loads(get(server.base_url + "/_feedserver/requests")[2])


def test_control_paths_advance_fault_and_show_the_log_over_http():
    with FeedServer(nist=[NIST]) as server:
        url = f"{server.base_url}/nist/atkinson-2020-general.json"
        etag = get(url)[1]["ETag"]
        assert post(server.base_url + "/_feedserver/advance")[0] == 200
        assert get(url)[1]["ETag"] != etag
        assert post(server.base_url + "/_feedserver/fault?kind=500&path=/nist/&count=2")[0] == 200
        assert [get(url)[0] for _ in range(3)] == [500, 500, 200]
        status, body = post(server.base_url + "/_feedserver/fault?kind=flaky")
        assert status == 400 and b"unknown fault" in body
        assert post(server.base_url + "/_feedserver/fault?kind=slow&seconds=-1")[0] == 400
        assert post(server.base_url + "/_feedserver/fault?kind=500&count=x")[0] == 400
        assert post(server.base_url + "/_feedserver/nothing")[0] == 404
        assert post(url)[0] == 405
        get(url, {"x-api-key": "secret"})
        get(url + "?apiKey=secret&x=1")
        assert log_of(server)[-1]["target"] == "/nist/atkinson-2020-general.json?apiKey=(sent)&x=1"
        log = log_of(server)[:-1]
        assert log.pop()["headers"]["x-api-key"] == "(sent)"  # not the key itself
        # The control requests are not in the log: it counts what a poller asked.
        path = "/nist/atkinson-2020-general.json"
        assert [(r["method"], r["path"]) for r in log] == [("GET", path)] * 5 + [("POST", path)]


def test_sources_file_names_every_feed_served_and_each_url_answers():
    with FeedServer(ap=[AP_CO], clarity=CLARITY, nist=[NIST], simulated=True,
                    requests_per_minute=20) as server:
        sources = tomllib.loads(server.sources_toml(3.0, "AP_KEY"))["source"]
        ids = [s["id"] for s in sources]
        # The simulated night keeps the ids the catalog knows; a state's counties are not
        # sources of their own: its county list leads to them.
        assert sorted(ids) == ["ap", "ap_20151103", "cl_ga", "mc", "nist_atkinson_20", "sos"]
        assert all(SOURCE_ID.fullmatch(i) for i in ids) and len(set(ids)) == len(ids)
        for source in sources:
            assert source["interval"] == 3
            url = source["url"] + ("current_ver.txt" if source["format"] == "clarity" else "")
            assert get(url)[0] == 200, url
            if source["format"] == "ap":
                assert source["api_key_env"] == "AP_KEY"
                assert source["requests_per_minute"] == 20
