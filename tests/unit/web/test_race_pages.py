"""The results pages, one race's page and chart, and the history API behind them."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from rome.feeds.formats import parse_feed
from rome.read.history import RaceHistory
from rome.read.results import CandidateView
from tests.helpers import webapp
from tests.helpers.builders import race_snapshot
from tests.helpers.format_cases import fixture
from tests.helpers.webapp import TOKEN, clean_env, dispose, make_app, record
from web.api import parse_since
from web.chart import axis_ticks, line_chart, short_number


def iso(name: str) -> str:
    """A name as the pages write it where no <bdi> can go: between FSI and PDI."""
    return f"\u2068{name}\u2069"


def no_outside_requests(html: str) -> bool:
    return not re.search(r'(src|href|srcset|action)="(https?:)?//', html)


def card(html: str, race_id: int) -> str:
    """Return one race's card of a page, its whitespace folded."""
    start = html.index(f'<article class="race" data-race="{race_id}"')
    return " ".join(html[start:html.index("</article>", start)].split())


def row(html: str, race_id: int, candidate_id: int) -> str:
    """Return a candidate's row of a race's main table."""
    race = card(html, race_id)
    start = race.index(f'<tr data-candidate="{candidate_id}" class=')
    return race[start:race.index("</tr>", start)]


def wipe(client) -> None:
    response = client.post("/race/wipeout", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200


# The overview ---------------------------------------------------------------


def test_the_page_updates_itself_and_still_refreshes_without_scripts(client):
    html = client.get("/race").get_data(as_text=True)
    assert '<script src="/static/live.js" defer></script>' in html
    assert 'data-api="/api/races"' in html and 'data-poll-ms="2000"' in html
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in html
    for hook in ('data-race="1"', 'data-candidate="102"', "data-votes", "data-pct", "data-bar",
                 'data-source="ap"', "data-numbers", "data-rejected-total"):
        assert hook in html
    script = client.get("/static/live.js").get_data(as_text=True)
    assert "fetch(" in script and "http" not in script.replace("HTTP ", "")


def test_the_page_is_locked_to_its_own_origin(client):
    response = client.get("/race")
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert no_outside_requests(response.get_data(as_text=True))


def test_sources_show_live_stale_or_waiting_and_say_what_stale_means(database_url, tmp_path):
    fresh = make_app(database_url, tmp_path, SOURCE_INTERVAL=2.0)
    stale = make_app(database_url, tmp_path, SOURCE_INTERVAL=2.0, STALE_AFTER=0.0)
    time.sleep(0.01)
    fresh_html = fresh.test_client().get("/race").get_data(as_text=True)
    stale_html = stale.test_client().get("/race").get_data(as_text=True)
    for app in (fresh, stale):
        dispose(app)
    # Races 1 and 3 each have a second source in the catalog (the state, AP) that is
    # live elsewhere but has not reported that race: waiting, unless it went silent.
    assert fresh_html.count('data-state>Live</span>') == 3
    assert fresh_html.count('data-state>Waiting</span>') == 2
    assert stale_html.count('>Stale</span>') == 5
    assert stale_html.count('<li data-source="mc" class="stale">') == 1
    # Each stale source says why, in words and in the label's tooltip.
    reasons = re.findall(r'<span class="stale-reason" data-stale-reason>([^<]*)</span>',
                         stale_html)
    assert len(reasons) == 5 and all(
        re.fullmatch(r"No report since \d\d:\d\d:\d\d UTC; a source is stale after 0 s"
                     r" without one\.", reason) for reason in reasons), reasons
    assert re.search(r'<span class="state" data-state title="No report since [^"]+">Stale<',
                     stale_html)
    assert fresh_html.count('<span class="stale-reason" data-stale-reason hidden></span>') == 5
    assert "has not reported for 5 of its\n      intervals (10&nbsp;s)" in fresh_html
    assert " s ago</span>" in fresh_html


def test_a_wiped_source_is_waiting(client):
    wipe(client)
    html = client.get("/race").get_data(as_text=True)
    assert html.count("data-state>Waiting</span>") == 5
    assert "no reports yet" in html


def test_each_source_shows_its_rejected_payloads(client):
    html = client.get("/race").get_data(as_text=True)
    assert '<span class="source-rejected has-rejected" data-rejected>1 rejected</span>' in html
    assert '<span class="source-rejected" data-rejected>0 rejected</span>' in html


# What the snapshots carry ---------------------------------------------------


def test_a_source_shows_its_units_and_precincts_reporting(client, night):
    html = client.get("/race").get_data(as_text=True)
    assert ('<span class="source-progress" data-progress title="feed version 2">2 of 3 county'
            ' units reporting · precincts 1,200 of 1,500 · as of 04:30:00 UTC</span>'
            ) in card(html, 1)
    # A feed with one level and no precinct counts: its one unit, and its own time.
    assert ('<span class="source-progress" data-progress title="feed version 2">1 of 1 county'
            ' unit reporting · as of 04:30:00 UTC</span>') in card(html, 2)


def test_the_votes_are_split_by_type(client, night):
    html = client.get("/race").get_data(as_text=True)
    race = card(html, 1)
    assert "<caption>By vote type, per <span data-primary-code>AP</span></caption>" in race
    assert ('<th scope="col" class="num">Early</th>'
            '<th scope="col" class="num">Election day</th>') in race
    assert ('<tr data-candidate="102"><th scope="row">'
            '<bdi class="name" title="Clinton">Clinton</bdi></th>'
            '<td class="num" data-vote-type="early">500</td>'
            '<td class="num" data-vote-type="election_day">100</td></tr>') in race
    # A feed that gives totals only gets no such table.
    assert "data-vote-types" not in card(html, 2)


def test_a_called_race_shows_the_call(client, night):
    html = client.get("/race").get_data(as_text=True)
    assert '<span class="badge called" data-called title="Called by AP">Called</span>' in row(
        html, 1, 102)
    assert "data-called hidden" in row(html, 1, 101)
    assert all("data-called hidden" in row(html, 2, cid) for cid in (201, 202))


def test_a_correction_is_applied_and_shown(client, night):
    html = client.get("/race").get_data(as_text=True)
    # AP's version 2 lowered Trump from 480 to 470.
    assert '<td class="num votes" data-votes>470</td>' in row(html, 1, 101)
    race = card(html, 1)
    assert "1,122 votes in 7 changes" in race
    assert ('<span class="source-corrections has-corrections" data-corrections>'
            '1 correction</span>') in race
    assert '<span class="source-corrections" data-corrections>0 corrections</span>' in card(
        html, 2)


def test_a_state_figure_that_is_not_the_sum_of_its_counties_is_flagged(client, night):
    html = client.get("/race").get_data(as_text=True)
    assert ('<ul class="level-disagreements" data-disagreements> <li>Levels disagree: state'
            ' figure for <bdi title="Clinton">Clinton</bdi> is 600, its county units sum to'
            ' 590</li> </ul>') in card(html, 1)
    assert "data-disagreements hidden" in card(html, 2)


def test_two_sources_side_by_side_with_their_differences_marked(client, night):
    html = client.get("/race").get_data(as_text=True)
    race = card(html, 1)
    # AP's column, the headline's votes, then the state's, in the catalog's order.
    assert ('<th scope="col" class="num" title="Votes per Associated Press">AP</th>'
            '<th scope="col" class="num by-source" title="Arizona Secretary of State">SOS</th>'
            ) in race
    assert ('<td class="num votes differs" data-votes>600</td>'
            '<td class="num by-source differs" data-by-source="sos">590</td>') in row(html, 1, 102)
    assert ('<td class="num votes" data-votes>470</td>'
            '<td class="num by-source" data-by-source="sos">470</td>') in row(html, 1, 101)
    assert '<span class="badge disagree" data-sources-disagree title=' in race
    assert "1,122 votes in 7 changes" in race and "1,112 votes in 4 changes" in race
    # One source per race: just votes, nothing to differ.
    assert "by-source" not in card(html, 2) and "data-sources-disagree hidden" in card(html, 2)
    assert '<th scope="col" class="num">Votes</th>' in card(html, 2)
    # Two, one of them without figures yet: columns, but nothing differs.
    assert '<td class="num by-source" data-by-source="ap">–</td>' in row(html, 3, 301)
    assert "data-sources-disagree hidden" in card(html, 3)


def test_every_race_lists_its_sources_in_one_order(client, database_url):
    # The catalog names the Senate race's keys state first, the President's AP first;
    # the page must not follow that: one order (the catalog's sources) for every race.
    record(database_url, race_snapshot("sos", 5, webapp.SOS_RACE_1, race_id=1),
           race_snapshot("sos", 5, {301: 900, 302: 800}, race_id=3),
           race_snapshot("ap", 5, {301: 910, 302: 790}, race_id=3))
    html = client.get("/race").get_data(as_text=True)
    for race_id in (1, 3):
        race = card(html, race_id)
        head = race[race.index("<thead>"):race.index("</thead>")]
        assert re.findall(r'<th scope="col" class="num[^"]*"[^>]*>(\w+)</th>', head) == [
            "AP", "SOS"], race_id
        assert re.findall(r'<li data-source="(\w+)"', race) == ["ap", "sos"], race_id
    body = client.get("/api/races").get_json()
    assert [[s["id"] for s in r["sources"]] for r in body["races"] if r["id"] in (1, 3)] == [
        ["ap", "sos"], ["ap", "sos"]]
    # The Senate race's headline is AP's too: the first source, in that order, with figures.
    assert body["races"][2]["primary_source"] == "ap"


def test_races_of_one_name_tell_apart_by_state_and_date(client, database_url):
    # Replayed real files: Alaska's 2012 AP answer and Georgia's 2020 NIST report, whose
    # President race has the very name of the demo's Arizona one.
    record(database_url,
           parse_feed("ap", fixture("ap", "20121106_ak_prez.json"), source="apak").validate(),
           parse_feed("nist", fixture("nist", "atkinson-2020-general.json"),
                      source="nist").validate())
    # The catalog's races are stored undated: the first feed to give a day names it, for good.
    record(database_url, replace(race_snapshot("ap", 5, webapp.AP_V2), election_date="2016-11-08"))
    record(database_url, replace(race_snapshot("ap", 6, webapp.AP_V2), election_date="2016-11-09"))
    html = client.get("/race").get_data(as_text=True)
    body = client.get("/api/races").get_json()
    where = {}
    for race in body["races"]:
        head = card(html, race["id"]).split("</header>")[0]
        shown = re.search(r'<p class="race-where" data-where>(.*?)</p>', head)
        where[race["name"], race["state"], race["election_date"]] = shown and re.sub(
            "<[^>]*>", "", shown[1])
    assert where == {
        ("President of the United States", "AZ", "2016-11-08"): "AZ · 8 Nov 2016",
        # The seeded demo races' feeds named no day.
        ("Maricopa County Sheriff", "AZ", None): "AZ",
        ("U.S. Senator", "AZ", None): "AZ",
        ("President", "AK", "2012-11-06"): "AK · 6 Nov 2012",
        ("President of the United States", "GA", "2020-11-03"): "GA · 3 Nov 2020",
        ("Statewide Referendum A", "GA", "2020-11-03"): "GA · 3 Nov 2020",
    }


def test_test_data_is_marked_as_test(client, night):
    html = client.get("/race").get_data(as_text=True)
    assert '<span class="badge test" data-test title=' in card(html, 2)
    assert "data-test hidden" in card(html, 1) and "data-test hidden" in card(html, 3)


# One race -------------------------------------------------------------------


def test_one_race_has_its_own_page_with_a_chart(client):
    response = client.get("/race/2")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f"<title>{iso('Maricopa County Sheriff')} · Rome</title>" in html
    assert ('<h1 id="race-2" class="race-name"><bdi class="clip" title="Maricopa County '
            'Sheriff">Maricopa County Sheriff</bdi></h1>') in html
    assert 'data-api="/api/races/2"' in html
    assert '<img src="/race/2/chart.svg" data-chart' in html
    assert 'srcset="/race/2/chart.svg?size=small" data-chart' in html
    assert f"{iso('Joe Arpaio')} 200, {iso('Paul Penzone')} 250" in html  # the chart's alt
    assert no_outside_requests(html)


def test_the_overview_links_each_race(client):
    html = client.get("/race").get_data(as_text=True)
    for race_id in (1, 2, 3):
        assert f'<a href="/race/{race_id}">' in html


def test_the_chart_follows_a_correction_and_starts_again_after_a_wipeout(client, database_url):
    record(database_url, *webapp.night())
    html = client.get("/race/1").get_data(as_text=True)
    assert "AP's state-level totals as each change was applied, corrections included" in html
    assert (f"{iso('Donald Trump')} 470, {iso('Hillary Clinton')} 600, "
            f"{iso('Gary Johnson')} 40, {iso('Jill Stein')} 12") in html
    wipe(client)
    record(database_url, race_snapshot("ap", 3, {101: 5}))
    html = client.get("/race/1").get_data(as_text=True)
    assert (f"{iso('Donald Trump')} 5, {iso('Hillary Clinton')} 0, "
            f"{iso('Gary Johnson')} 0, {iso('Jill Stein')} 0") in html
    assert f"{iso('Hillary Clinton')}: 0" in client.get("/race/1/chart.svg").get_data(as_text=True)


@pytest.mark.parametrize("path", ["/race/9", "/race/9/chart.svg", "/race/x"])
def test_unknown_race_pages_are_404(client, path):
    assert client.get(path).status_code == 404


def test_the_chart_is_an_svg_with_a_line_per_candidate(client):
    response = client.get("/race/1/chart.svg")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    svg = response.get_data(as_text=True)
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 960 320"')
    assert svg.count("<polyline") == 4
    assert f"{iso('Hillary Clinton')}: 513" in svg
    small = client.get("/race/1/chart.svg?size=small").get_data(as_text=True)
    assert 'viewBox="0 0 360 260"' in small
    assert client.get("/race/1/chart.svg?size=huge").status_code == 400


def test_an_empty_race_draws_an_empty_chart(client):
    wipe(client)
    svg = client.get("/race/3/chart.svg").get_data(as_text=True)
    assert "No votes recorded yet" in svg and "<polyline" not in svg


def test_line_chart_scales_steps_into_the_plot_area():
    start = datetime(2016, 11, 8, 20, tzinfo=UTC)
    history = RaceHistory(
        race_id=2, candidate_ids=[201, 202], since=None, bucket_seconds=10, baseline=[0, 0],
        points=[(start, [10, 0]), (start + timedelta(seconds=30), [10, 40])],
    )
    candidates = [CandidateView(201, "Joe", "Arpaio", "GOP"), CandidateView(202, "Al", "X", "GOP")]
    chart = line_chart(history, candidates, width=200, height=100)
    arpaio, other = chart.lines
    assert (arpaio.color, arpaio.dash, other.dash) == ("#c0392b", "", "7 4")
    assert other.votes == 40 and arpaio.label == "Joe Arpaio"
    xs = [float(p.split(",")[0]) for p in arpaio.points.split()]
    ys = [float(p.split(",")[1]) for p in other.points.split()]
    assert xs[0] == chart.left and xs[-1] == chart.right
    assert ys[0] == chart.bottom and min(ys) == chart.top  # 40 of a 40-vote axis
    assert [label for _, label in chart.y_ticks] == ["0", "10", "20", "30", "40"]
    assert chart.x_ticks[0][1] == "19:59:50" and chart.x_ticks[-1][1] == "20:00:30"


@pytest.mark.parametrize(
    ("value", "ticks"),
    [(0, [0, 1]), (1, [0, 1]), (3, [0, 1, 2, 3]), (7, [0, 2, 4, 6, 8]),
     (40, [0, 10, 20, 30, 40]), (41, [0, 20, 40, 60]), (2400, [0, 1000, 2000, 3000])],
)
def test_axis_ticks_are_round(value, ticks):
    assert axis_ticks(value) == ticks


def test_axis_labels_are_short():
    assert [short_number(v) for v in (0, 950, 12000, 1_500_000)] == ["0", "950", "12k", "1.5M"]


# The history API --------------------------------------------------------------


def test_history_of_a_race(client):
    response = client.get("/api/races/1/history")
    assert response.status_code == 200
    body = response.get_json()
    assert body["candidate_ids"] == [101, 102, 103, 104]
    assert (body["source"], body["level"]) == ("ap", "state")
    assert body["points"][-1]["votes"] == {"101": 480, "102": 513, "103": 33, "104": 12}
    assert body["since"] is None
    assert body["votes_at_since"] == {"101": 0, "102": 0, "103": 0, "104": 0}


def test_history_since_a_moment(client, database_url):
    body = client.get("/api/races/1/history?since=2999-01-01T00:00:00Z").get_json()
    assert body["points"] == []
    assert body["votes_at_since"] == {"101": 480, "102": 513, "103": 33, "104": 12}
    assert body["since"] == "2999-01-01T00:00:00+00:00"
    record(database_url, race_snapshot("ap", 9, {104: 17}))
    # A naive time is UTC; the query string may also use an offset.
    for since in ("2000-01-01T00:00:00", "2000-01-01T01:00:00+01:00"):
        body = client.get("/api/races/1/history", query_string={"since": since}).get_json()
        assert set(body["votes_at_since"].values()) == {0}
        assert body["points"][-1]["votes"]["104"] == 17


@pytest.mark.parametrize(
    "since", ["yesterday", "", "2016-13-01T00:00:00Z", "2016-11-08", "1478635200",
              "2016-11-08T20:00:00+24:00"]
)
def test_history_with_a_bad_since_is_400(client, since):
    response = client.get("/api/races/1/history", query_string={"since": since})
    assert response.status_code == 400
    assert "RFC 3339" in response.get_json()["error"]


@pytest.mark.parametrize("race_id", ["9", "99999999999999999999"])
def test_history_of_an_unknown_race_is_404(client, race_id):
    response = client.get(f"/api/races/{race_id}/history")
    assert response.status_code == 404
    assert response.get_json()["error"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2016-11-08T20:00:00Z", datetime(2016, 11, 8, 20, tzinfo=UTC)),
        ("2016-11-08t20:00:00z", datetime(2016, 11, 8, 20, tzinfo=UTC)),
        ("2016-11-08T20:00:00.123456789-07:00", datetime(2016, 11, 9, 3, 0, 0, 123456, UTC)),
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_parse_since_reads_rfc_3339(raw, expected):
    assert parse_since(raw) == expected


def test_livez_touches_nothing(tmp_path, monkeypatch):
    clean_env(monkeypatch, tmp_path)
    app = make_app(f"sqlite:///{tmp_path / 'missing' / 'rome.sqlite3'}", tmp_path)
    response = app.test_client().get("/livez")
    dispose(app)
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_a_valid_since_beyond_pythons_range_is_before_or_after_everything(client):
    # RFC 3339 allows it; its offset shifts it before year 1 (or past 9999).
    early = client.get("/api/races/1/history", query_string={"since": "0001-01-01T00:00:00+01:00"})
    assert early.status_code == 200 and early.get_json()["points"]
    late = client.get("/api/races/1/history", query_string={"since": "9999-12-31T23:59:59-01:00"})
    assert late.status_code == 200 and late.get_json()["points"] == []


class Names(HTMLParser):
    """Collect where a page writes given names: in text (with the elements around it) and in
    attributes."""

    def __init__(self, names):
        super().__init__()
        self.names, self.open, self.texts, self.attributes = names, [], [], []

    def handle_starttag(self, tag, attrs):
        if tag not in ("br", "img", "input", "meta", "link", "source", "line"):
            self.open.append((tag, dict(attrs)))
        self.attributes += [value for _, value in attrs
                            if value and any(n in value for n in self.names)]

    def handle_endtag(self, tag):
        while self.open and self.open.pop()[0] != tag:
            pass

    def handle_data(self, data):
        if any(n in data for n in self.names):
            self.texts.append((data, list(self.open)))


def hostile_names(client, database_url, path):
    record(database_url, webapp.hostile())
    race_id = client.get("/api/races").get_json()["races"][-1]["id"]
    page = Names([webapp.RLO, webapp.LONG_LAST[:40]])
    page.feed(client.get(path.format(race_id)).get_data(as_text=True))
    return page


@pytest.mark.parametrize("path", ["/race", "/race/{}", "/race/{}/chart.svg"])
def test_feed_names_are_isolated_so_an_override_cannot_reverse_the_figures(
        client, database_url, path):
    page = hostile_names(client, database_url, path)
    assert page.texts or page.attributes
    for text, around in page.texts:
        # In the page, in a <bdi>; in an SVG's or the document's <title>, between FSI and PDI.
        tags = [tag for tag, _ in around]
        assert "bdi" in tags or (tags[-1] == "title" and text.count("\u2068") and
                                 text.count("\u2068") == text.count("\u2069")), (text, tags)
    alone = {webapp.HOSTILE_RACE, webapp.HOSTILE_LAST, webapp.LONG_LAST,
             f"Eve {webapp.HOSTILE_LAST}", f"Maximiliana {webapp.LONG_LAST}"}
    for value in page.attributes:
        if value in alone:
            continue  # a title holding just the name: nothing follows it
        assert value.count("\u2068") == value.count("\u2069") >= 1, value


def test_a_long_name_is_clipped_with_its_whole_self_in_a_title(client, database_url):
    page = hostile_names(client, database_url, "/race")
    clipped = [attrs for text, around in page.texts if webapp.LONG_LAST[:40] in text
               for tag, attrs in around if tag == "bdi" and attrs.get("class") == "name"]
    assert clipped and all(attrs["title"].endswith(webapp.LONG_LAST) for attrs in clipped)
    css = client.get("/static/style.css").get_data(as_text=True)
    rule = css[css.index(".candidates .name, .vote-types .name {"):]
    rule = rule[:rule.index("}")]
    assert "line-clamp: 2" in rule and "overflow: hidden" in rule and "anywhere" in rule
