"""The pollers' protocols against recorded-style answers, through httpx.MockTransport."""

from __future__ import annotations

import json
import random
from pathlib import Path

import httpx
import pytest

from rome.feeds.poll import PollState, ap, clarity, nist
from rome.feeds.poll.http import Fetcher, Limiter
from rome.feeds.sources_file import DEFAULT_USER_AGENT, SourceSpec
from tests.helpers.feeds_http import (
    AP_BASE,
    ATKINSON,
    BACON,
    QUOTA_XML,
    STATE_BASE,
    FakeClock,
    ap_answer,
    ap_race,
    election_settings,
    zipped,
)


def spec(fmt="ap", url=f"{AP_BASE}?format=json&level=state", rpm=100, **more):
    return SourceSpec(id="live", format=fmt, url=url, interval=5.0, name="Live",
                      requests_per_minute=rpm, **more)


class Recorder:
    """A MockTransport handler answering from a function, logging every request."""

    def __init__(self, answer):
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    @property
    def urls(self) -> list[str]:
        return [str(r.url) for r in self.requests]


def run(module, source, state, handler, clock=None, deadline=60.0, env=None):
    clock = clock or FakeClock()
    kept = []

    def keep(answer, *, kind, version, scope):
        kept.append((answer.url, answer.status, kind, version, scope))
        return len(kept)

    fetcher = Fetcher(source, deadline=deadline, stamps=state.recent, env=env or {},
                      transport=httpx.MockTransport(handler), clock=clock, sleep=clock.sleep)
    with fetcher:
        outcome = module.poll(fetcher, source, state, keep)
        state.recent = fetcher.limiter.stamps
    return outcome, kept


# -- AP ---------------------------------------------------------------------------------------

NEXT1 = f"{AP_BASE}?format=json&level=state&minDateTime=2024-11-06T03:00:00.123Z&x=%2Fa"
NEXT2 = f"{AP_BASE}?format=json&level=state&minDateTime=2024-11-06T03:00:05.456Z"


def test_ap_asks_the_configured_url_first_then_each_nextrequest_verbatim():
    answers = {
        spec().url: ap_answer([ap_race("1", "AZ", {"a": 1})], "2024-11-06T03:00:00Z", NEXT1),
        NEXT1: ap_answer([], "2024-11-06T03:00:05Z", NEXT2),
    }
    handler = Recorder(lambda r: httpx.Response(200, content=answers[str(r.url)]))
    state = PollState()
    first, _ = run(ap, spec(), state, handler)
    assert handler.urls == [spec().url] and state.next_url == NEXT1
    assert len(first.items) == 1
    second, kept = run(ap, spec(), state, handler)
    # Exactly as given: the escaped %2F and the millisecond minDateTime untouched.
    assert handler.urls[1] == NEXT1 and state.next_url == NEXT2
    # No races: archived, and nothing goes downstream.
    assert second.items == [] and kept[0][2] == "empty" and not second.changed


def test_ap_follows_a_truncated_chain_at_once_until_it_ends():
    chain = [f"{AP_BASE}?format=json&level=state&minDateTime=t&offset={i}" for i in range(4)]
    answers = {spec().url: ap_answer([ap_race("1", "AZ", {"a": 1})], "2024-11-06T03:00:00Z",
                                     chain[0], truncated=True)}
    for i in range(3):
        answers[chain[i]] = ap_answer([ap_race(str(i + 2), "AZ", {"a": i})],
                                      "2024-11-06T03:00:00Z", chain[i + 1], truncated=i < 2)
    handler = Recorder(lambda r: httpx.Response(200, content=answers[str(r.url)]))
    state = PollState()
    outcome, _ = run(ap, spec(), state, handler)
    assert handler.urls == [spec().url, *chain[:3]]
    assert len(outcome.items) == 4 and state.next_url == chain[3]


def test_ap_waits_out_a_quota_403_in_xml_and_resumes_from_the_same_nextrequest():
    state = PollState(next_url=NEXT1)
    calls = iter([httpx.Response(403, content=QUOTA_XML,
                                 headers={"Content-Type": "application/xml"}),
                  httpx.Response(200, content=ap_answer([ap_race("1", "AZ", {"a": 5})],
                                                        "2024-11-06T03:00:10Z", NEXT2))])
    handler = Recorder(lambda r: next(calls))
    clock = FakeClock()
    outcome, kept = run(ap, spec(), state, handler, clock=clock)
    assert handler.urls == [NEXT1, NEXT1]
    assert len(clock.slept) == 1 and 5.0 <= clock.slept[0] <= 10.0
    assert [k[2] for k in kept] == ["error", "feed"] and outcome.error is None
    assert state.next_url == NEXT2


def test_ap_quota_past_the_deadline_stops_and_the_next_cycle_resumes_there():
    state = PollState(next_url=NEXT1)
    handler = Recorder(lambda r: httpx.Response(403, content=QUOTA_XML))
    outcome, _ = run(ap, spec(), state, handler, deadline=4.0)
    assert "quota" in outcome.error and state.next_url == NEXT1


def test_ap_limiter_is_never_exceeded_in_any_60_s_retries_included():
    """Quota answers come often: every request, retries too, stays within the limit."""
    rpm = 5
    clock = FakeClock()
    responses = iter(
        [httpx.Response(403, content=QUOTA_XML)] * 7
        + [httpx.Response(200, content=ap_answer([ap_race("1", "AZ", {"a": 1})], "2024-11-06T"
                                                 "03:00:00Z", NEXT1))] * 20)
    times = []

    def answer(request):
        times.append(clock())
        return next(responses)

    state = PollState()
    for _ in range(6):
        run(ap, spec(rpm=rpm), state, Recorder(answer), clock=clock, deadline=120.0)
    assert len(times) >= 12
    for t in times:
        assert sum(1 for u in times if t <= u < t + 60.0) <= rpm


def test_the_limiter_window_slides():
    # 61 s: the provider's 60 and a second's margin for the delay before a request arrives.
    limiter = Limiter(2, [100.0, 130.0])
    assert limiter.wait(150.0) == pytest.approx(11.0, abs=0.01)
    assert limiter.wait(160.5) > 0
    assert limiter.wait(161.01) == 0.0


def test_requests_arriving_late_by_varying_delays_stay_within_the_limit_as_received():
    """What `rome bench polling` found: stamped 60 s apart, arrived under 60 s apart."""
    rng = random.Random(19)
    limiter, now, arrivals = Limiter(12), 1000.0, []
    while now < 1600.0:
        wait = limiter.wait(now)
        if wait > 0:
            now += wait
            continue
        limiter.take(now)
        arrivals.append(now + rng.uniform(0.0, 0.9))  # the provider's clock of receipt
        now += 5.0  # a poll every 5 s: exactly 12 a minute, at the limit
    assert len(arrivals) > 100
    for t in arrivals:
        assert sum(1 for u in arrivals if t <= u < t + 60.0) <= 12


def test_ap_key_is_sent_as_x_api_key_with_the_sources_user_agent():
    handler = Recorder(lambda r: httpx.Response(200, content=ap_answer([], "2024-11-06T03:00:00Z",
                                                                       NEXT1)))
    run(ap, spec(api_key_env="AP_KEY"), PollState(), handler, env={"AP_KEY": "k-123"})
    request = handler.requests[0]
    assert request.headers["x-api-key"] == "k-123"
    assert request.headers["user-agent"] == DEFAULT_USER_AGENT
    assert "python" not in request.headers["user-agent"].lower()
    run(ap, spec(user_agent="Desk/2 (desk@example.org)"), PollState(), handler)
    assert handler.requests[1].headers["user-agent"] == "Desk/2 (desk@example.org)"
    assert "x-api-key" not in handler.requests[1].headers


def test_ap_refuses_a_nextrequest_on_another_host():
    handler = Recorder(lambda r: httpx.Response(200, content=ap_answer(
        [], "2024-11-06T03:00:00Z", "https://evil.example/v2/elections")))
    state = PollState()
    outcome, _ = run(ap, spec(), state, handler)
    assert "not on api.ap.example" in outcome.error and state.next_url is None


def test_ap_server_error_keeps_the_url_for_the_next_cycle():
    state = PollState(next_url=NEXT1)
    outcome, kept = run(ap, spec(), state, Recorder(lambda r: httpx.Response(500)))
    assert outcome.status == 500 and "HTTP 500" in outcome.error and state.next_url == NEXT1


def test_a_refused_connection_is_an_error_not_a_crash():
    def refuse(request):
        raise httpx.ConnectError("Connection refused", request=request)

    outcome, _ = run(ap, spec(), PollState(), Recorder(refuse))
    assert "ConnectError" in outcome.error and outcome.status is None


# -- Clarity ----------------------------------------------------------------------------------

COUNTY_BASE = "https://results.example/GA/Atkinson/105380/"


def test_clarity_base_urls_are_told_apart():
    assert clarity.election_of(COUNTY_BASE) == ("GA", "Atkinson", "105380")
    assert clarity.election_of(STATE_BASE) == ("GA", None, "105369")
    assert clarity.election_of("http://h:1/clarity/GA/105369/") == ("GA", None, "105369")
    assert (clarity.county_zip_url(STATE_BASE, "Ben Hill", "105390", "270000")
            == "https://results.example/GA/Ben%20Hill/105390/270000/reports/detailxml.zip")


def test_clarity_county_fetches_the_zip_only_when_current_ver_moves():
    versions = iter(["250000", "250000", "250123"])

    def answer(request):
        path = request.url.path
        if path.endswith("current_ver.txt"):
            return httpx.Response(200, text=next(versions))
        return httpx.Response(200, content=zipped(ATKINSON))

    handler = Recorder(answer)
    state = PollState()
    s = spec("clarity", COUNTY_BASE)
    first, _ = run(clarity, s, state, handler)
    second, _ = run(clarity, s, state, handler)
    third, _ = run(clarity, s, state, handler)
    paths = [r.url.path for r in handler.requests]
    assert paths == ["/GA/Atkinson/105380/current_ver.txt",
                     "/GA/Atkinson/105380/250000/reports/detailxml.zip",
                     "/GA/Atkinson/105380/current_ver.txt",
                     "/GA/Atkinson/105380/current_ver.txt",
                     "/GA/Atkinson/105380/250123/reports/detailxml.zip"]
    assert [len(o.items) for o in (first, second, third)] == [1, 0, 1]
    assert third.items[0].version == 250123 and state.version == "250123"


def test_clarity_state_fetches_only_moved_counties_and_records_a_404_and_a_bad_zip():
    rounds = iter([
        ("100", {"Atkinson": ("105380", "10"), "Bacon": ("105381", "20"),
                 "Clay": ("105382", "30")}),
        ("101", {"Atkinson": ("105380", "11"), "Bacon": ("105381", "20"),
                 "Clay": ("105382", "30")}),
        ("102", {"Atkinson": ("105380", "11"), "Bacon": ("105381", "20"),
                 "Clay": ("105382", "30")}),
    ])
    current = {}
    broken = {"Bacon": 404, "Clay": "badzip"}

    def answer(request):
        path = request.url.path
        if path.endswith("current_ver.txt"):
            current["ver"], current["counties"] = next(rounds)
            return httpx.Response(200, text=current["ver"] + "\n")
        if path.endswith("electionsettings.json"):
            assert f"/{current['ver']}/json/en/" in path
            return httpx.Response(200, content=election_settings(current["counties"]))
        county = path.split("/")[2]
        fault = broken.get(county)
        if fault == 404:
            return httpx.Response(404, text="Not Found")
        if fault == "badzip":
            return httpx.Response(200, content=b"PK\x03\x04 not a zip at all")
        return httpx.Response(200, content=zipped(ATKINSON if county == "Atkinson" else BACON))

    handler = Recorder(answer)
    state = PollState()
    s = spec("clarity", STATE_BASE)
    first, _ = run(clarity, s, state, handler)
    assert [i.scope for i in first.items] == ["Atkinson"]
    assert "Bacon 20: HTTP 404" in state.county_errors["Bacon"]
    assert "bad zip" in state.county_errors["Clay"]
    assert set(state.pending) == {"Bacon", "Clay"} and "2 counties failed" in first.error
    # Next cycle: Atkinson moved; the two failures are retried; Bacon comes back.
    broken.pop("Bacon")
    handler.requests.clear()
    second, _ = run(clarity, s, state, handler)
    fetched = [r.url.path for r in handler.requests if r.url.path.endswith(".zip")]
    assert fetched == ["/GA/Atkinson/105380/11/reports/detailxml.zip",
                       "/GA/Bacon/105381/20/reports/detailxml.zip",
                       "/GA/Clay/105382/30/reports/detailxml.zip"]
    assert [i.scope for i in second.items] == ["Atkinson", "Bacon"]
    assert set(state.county_errors) == {"Clay"}
    # Clay mended: only Clay is fetched, though no county version moved.
    broken.clear()
    handler.requests.clear()
    third, _ = run(clarity, s, state, handler)
    fetched = [r.url.path for r in handler.requests if r.url.path.endswith(".zip")]
    assert fetched == ["/GA/Clay/105382/30/reports/detailxml.zip"]
    assert state.county_errors == {} and state.pending == {} and third.error is None


def test_unzip_takes_one_member_within_its_bound():
    assert clarity.unzip_one(zipped(b"<x/>")) == b"<x/>"
    with pytest.raises(clarity.BadZip, match="2 files"):
        clarity.unzip_one(zipped(b"<x/>", extra=1))
    with pytest.raises(clarity.BadZip, match="over 100"):
        clarity.unzip_one(zipped(b"0" * 1000), limit=100)
    with pytest.raises(clarity.BadZip, match="bad zip"):
        clarity.unzip_one(zipped(b"<x/>")[:40])


def test_county_scopes_keep_race_keys_apart():
    from rome.feeds.formats import parse_feed

    a = clarity.scoped(parse_feed("clarity", ATKINSON, source="ga", version=1), "Atkinson")
    b = clarity.scoped(parse_feed("clarity", BACON, source="ga", version=1), "Bacon")
    a.validate(), b.validate()
    assert a.race_keys() and not (a.race_keys() & b.race_keys())


# -- NIST -------------------------------------------------------------------------------------

def test_nist_sends_validators_and_a_304_costs_nothing():
    body = (Path(__file__).parents[2] / "fixtures" / "nist" / "atkinson-2020-general.json"
            ).read_bytes()

    def answer(request):
        if request.headers.get("if-none-match") == '"v1"':
            return httpx.Response(304)
        return httpx.Response(200, content=body, headers={
            "ETag": '"v1"', "Last-Modified": "Wed, 04 Nov 2020 06:00:00 GMT"})

    handler = Recorder(answer)
    state = PollState()
    s = spec("nist", "https://sos.example/results.json")
    first, kept = run(nist, s, state, handler)
    assert len(first.items) == 1 and state.etag == '"v1"'
    second, kept = run(nist, s, state, handler)
    assert second.items == [] and second.status == 304 and kept == []
    sent = handler.requests[1].headers
    assert sent["if-none-match"] == '"v1"'
    assert sent["if-modified-since"] == "Wed, 04 Nov 2020 06:00:00 GMT"


def test_ap_answers_read():
    parsed = ap.read_answer(json.dumps({"races": [1, 2], "nextrequest": NEXT1,
                                        "isTruncated": True}).encode())
    assert parsed == ap.ApAnswer(NEXT1, True, 2, None)
    assert ap.is_quota(403, QUOTA_XML) and not ap.is_quota(200, QUOTA_XML)
    with pytest.raises(ValueError, match="not JSON"):
        ap.read_answer(b"<html>")
