"""The results page in headless Chromium: live numbers and fields, the wipeout form, links, errors.

The site is gunicorn (two workers) over an SQLite file; the tests record
snapshots into that file as caesar would, so what the page must show is known.
How links and errors look is checked on the seeded test app.
One more runs the real pipeline (worker and beat) behind the page.
Needs Debian's chromium (/usr/bin/chromium) and the playwright package: skipped
without them, a failure when CI is set. Set ROME_TEST_SCREENSHOTS to a folder
(docs, say) to keep the screenshots it takes, race-page.png among them.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy import text as sql
from werkzeug.serving import make_server

from tests.helpers import webapp
from tests.helpers.builders import race_snapshot
from tests.helpers.services import missing_service
from tests.helpers.support import Processes, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "browser-admin-token"
TOTAL = '[data-race="{}"] [data-total]'
RACE_1 = {cid: votes for cid, votes in webapp.VOTES.items() if cid // 100 == 1}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def totals(base: str) -> list[int]:
    return [race["total_votes"] for race in get_json(f"{base}/api/races")["races"]]


@pytest.fixture
def chromium():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        missing_service("Playwright", exc)
    if not CHROMIUM.exists():
        missing_service("Chromium", FileNotFoundError(CHROMIUM))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


def serve(processes: Processes) -> str:
    """Start gunicorn with two workers (a form served by one must be accepted by the other)
    on a free port; return its URL once it answers."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes.start("web", [sys.executable, "-m", "gunicorn", "-c", "python:web.gunicorn_conf",
                            "-w", "2", "-b", f"127.0.0.1:{port}", "web:create_app()"])

    def serving():
        try:
            return get_json(f"{base}/livez")
        except OSError:
            return None

    wait_for(serving, 30, what="gunicorn to serve")
    return base


@pytest.fixture
def site(tmp_path):
    """Serve the seeded results with gunicorn (two workers); yield its URL, the database's URL
    and the processes."""
    url = f"sqlite:///{tmp_path / 'rome.sqlite3'}"
    webapp.seed(url)
    env = {
        "ROME_DATA_DIR": str(tmp_path / "data"),
        "ROME_DATABASE_URL": url,
        # Empty means the embedded default, whatever the developer's shell says.
        "ROME_BROKER_URL": "",
        "ROME_SECRET_KEY": "",
        # The page polls every second; a source is stale after 20 silent seconds.
        "ROME_SOURCE_INTERVAL": "1",
        "ROME_UPDATE_CHANCE": "0.3",
        "ROME_ADMIN_TOKEN": TOKEN,
    }
    processes = Processes(env, tmp_path)
    base = serve(processes)
    yield base, url, processes
    processes.stop()
    proc = processes.procs["web"]
    assert proc.returncode in (0, -15), f"web exited {proc.returncode}:\n" + (
        processes.log("web")[-3000:]
    )


def watch(browser, base: str, path: str, width: int = 1280, height: int = 900, **kw):
    """Open path in a new page that records requests elsewhere and console errors."""
    page = browser.new_page(viewport={"width": width, "height": height}, **kw)
    page.outside, page.errors = [], []
    page.on("request", lambda r: r.url.startswith(base) or page.outside.append(r.url))
    # The refused form posts answer 401, which Chromium reports; anything else is a fault.
    page.on("console", lambda m: m.type == "error" and "status of 401" not in m.text
            and page.errors.append(m.text))
    page.goto(f"{base}{path}")
    page.evaluate("window.sameDocument = true")
    return page


@pytest.fixture
def seeded(app):
    """Serve the seeded test app (tests/helpers/webapp.py) on a free port; yield its URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


# Read at import: the web tests' fixtures remove every ROME_* variable.
SCREENSHOTS = os.environ.get("ROME_TEST_SCREENSHOTS")


def keep(page, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=True)


def text(page, selector: str) -> str:
    return " ".join(page.locator(selector).text_content().split())


def overflowing(page) -> list[str]:
    """Name the race cards whose content is wider than the card, or whose table scrolls."""
    return page.evaluate(
        "() => [...document.querySelectorAll('.race')].filter((card) =>"
        " card.scrollWidth > card.clientWidth || [...card.querySelectorAll('.table-scroll')]"
        ".some((box) => box.scrollWidth > box.clientWidth)).map((card) => card.dataset.race)"
    )


def test_the_page_lives_and_the_form_wipes_out_only_with_the_token(chromium, site):
    base, url, processes = site
    page = watch(chromium, base, "/race")
    assert page.title() == "Live election results · Rome"
    assert page.text_content(TOTAL.format(1)) == "1,038"
    # The numbers change while we watch, with no reload.
    webapp.record(url, race_snapshot("ap", 2, {**RACE_1, 102: 613}))
    page.wait_for_function(
        "([selector]) => document.querySelector(selector).textContent === '1,138'",
        arg=[TOTAL.format(1)], timeout=10_000,
    )
    assert page.evaluate("window.sameDocument") is True
    assert page.locator('[data-race="1"] [data-source="ap"] [data-state]').text_content() == "Live"

    # One race's page draws its chart and redraws it as votes arrive.
    detail = watch(chromium, base, "/race/1")
    detail.wait_for_function(
        "() => { const img = document.querySelector('img[data-chart]');"
        " return img.complete && img.naturalWidth > 0 && img.currentSrc.includes('v='); }",
        timeout=10_000,
    )
    first = detail.evaluate("document.querySelector('img[data-chart]').currentSrc")
    webapp.record(url, race_snapshot("ap", 3, {**RACE_1, 102: 700}))
    detail.wait_for_function(
        "([first]) => { const img = document.querySelector('img[data-chart]');"
        " return img.complete && img.naturalWidth > 0 && img.currentSrc !== first; }",
        arg=[first], timeout=10_000,
    )
    assert detail.evaluate("window.sameDocument") is True

    # Without the token the server refuses, whatever the page's own checks say.
    page.click("#wipeout summary")
    page.check("input[name=confirm]")
    page.eval_on_selector("form.wipeout", "form => { form.noValidate = true; }")
    page.click("form.wipeout button")
    assert page.locator(".form-error").text_content() == "Enter the admin token."
    page.fill("input[name=token]", "not-the-token")
    page.check("input[name=confirm]")
    page.click("form.wipeout button")
    assert page.locator(".form-error").text_content() == "The admin token is wrong."
    assert min(totals(base)) > 0

    page.fill("input[name=token]", TOKEN)
    page.check("input[name=confirm]")
    page.click("form.wipeout button")
    page.wait_for_url(f"{base}/race")
    assert page.locator(".flash").text_content().startswith("Wiped out ")
    assert [page.text_content(TOTAL.format(i)) for i in (1, 2, 3)] == ["0", "0", "0"]
    assert page.locator("[data-state]").all_text_contents() == ["Waiting"] * 5
    assert totals(base) == [0, 0, 0]
    wiped = [line for line in processes.log("web").splitlines() if "event=wipeout " in line]
    assert len(wiped) == 1 and "via=form" in wiped[0] and "remote_addr=127.0.0.1" in wiped[0]
    for watched in (page, detail):
        assert watched.outside == [] and watched.errors == []


def test_the_page_shows_calls_corrections_and_disagreements_as_they_arrive(chromium, site):
    base, url, _ = site
    # AP's first report already splits its votes by type, so the page has that table.
    webapp.record(url, race_snapshot("ap", 1, RACE_1, vote_types=webapp.VOTE_TYPES))
    page = watch(chromium, base, "/race")
    ap = '[data-race="1"] [data-source="ap"]'
    clinton = '[data-race="1"] tbody [data-candidate="102"]'
    assert text(page, f"{ap} [data-progress]").startswith("1 of 1 state unit reporting · as of ")
    assert text(page, f"{ap} [data-corrections]") == "0 corrections"
    assert page.locator(f"{clinton} [data-called]").is_hidden()
    assert page.locator(f"{ap} [data-disagreements]").is_hidden()
    assert page.locator('[data-race="1"] [data-sources-disagree]').is_hidden()
    assert page.locator('[data-race="2"] [data-test]').is_hidden()

    webapp.record(url, *webapp.night())
    page.wait_for_function(
        "([selector]) => document.querySelector(selector).textContent.includes('04:30:00')",
        arg=[f"{ap} [data-progress]"], timeout=10_000,
    )
    assert page.evaluate("window.sameDocument") is True
    assert text(page, f"{ap} [data-progress]") == (
        "2 of 3 county units reporting · precincts 1,200 of 1,500 · as of 04:30:00 UTC")
    assert page.get_attribute(f"{ap} [data-progress]", "title") == "feed version 2"
    assert text(page, f"{ap} [data-corrections]") == "1 correction"
    assert "has-corrections" in page.get_attribute(f"{ap} [data-corrections]", "class")
    assert page.locator(f"{clinton} [data-called]").is_visible()
    assert page.get_attribute(f"{clinton} [data-called]", "title") == "Called by AP"
    assert page.locator('[data-race="1"] tbody [data-candidate="101"] [data-called]').is_hidden()
    assert page.locator(f"{ap} [data-disagreements] li").all_text_contents() == [
        "Levels disagree: state figure for Clinton is 600, its county units sum to 590"]
    assert page.locator('[data-race="1"] [data-sources-disagree]').is_visible()
    assert text(page, f'{clinton} [data-by-source="sos"]') == "590"
    assert "differs" in page.get_attribute(f'{clinton} [data-by-source="sos"]', "class")
    assert text(page, '[data-race="1"] tbody [data-candidate="101"] [data-votes]') == "470"
    assert page.locator('[data-race="2"] [data-test]').is_visible()
    # The leader stays on top; the table keeps its order by votes.
    assert page.locator('[data-race="1"] tbody tr').first.get_attribute("data-candidate") == "102"
    keep(page, "race-page.png")

    # Millions of votes from two sources that differ still fit their card.
    webapp.record(url, race_snapshot("sos", 3, {301: 1_234_567, 302: 2_345_678}, race_id=3),
                  race_snapshot("ap", 3, {301: 1_234_568, 302: 2_345_678}, race_id=3))
    page.wait_for_function(  # AP's figures: first of the two in the catalog's order
        "([selector]) => document.querySelector(selector).textContent === '3,580,246'",
        arg=[TOTAL.format(3)], timeout=10_000,
    )
    assert overflowing(page) == []
    # A phone: nothing wider than the screen, two sources and vote types included.
    phone = watch(chromium, base, "/race", width=390, height=844, device_scale_factor=2)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    assert overflowing(phone) == []
    keep(phone, "race-page-phone.png")
    detail = watch(chromium, base, "/race/1")
    keep(detail, "race-one.png")

    # A vote type the page has no column for: it reloads, once, and shows it.
    webapp.record(url, race_snapshot(
        "ap", 3, webapp.AP_V2, vote_types={"provisional": {101: 1, 102: 2}}))
    page.wait_for_function("() => window.sameDocument === undefined", timeout=10_000)
    page.wait_for_selector('[data-race="1"] [data-vote-types] [data-vote-type="provisional"]')
    for watched in (page, phone, detail):
        assert watched.outside == [] and watched.errors == []


def test_race_titles_look_like_the_links_they_are(chromium, seeded):
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{seeded}/race")
    title = page.locator('[data-race="1"] .race-name a')
    look = title.evaluate(
        "a => { const s = getComputedStyle(a), h = getComputedStyle(a.parentElement);"
        " return {line: s.textDecorationLine, color: s.color, heading: h.color,"
        " after: getComputedStyle(a, '::after').content}; }"
    )
    assert look["line"] == "underline"
    assert look["color"] == "rgb(31, 95, 174)" != look["heading"]  # the page's link blue
    assert "›" in look["after"]
    keep(page, "race-links.png")
    title.click()
    page.wait_for_url(f"{seeded}/race/1")
    assert page.locator("h1.race-name").text_content().strip() == "President of the United States"


def test_column_headings_stand_apart(chromium, seeded):
    # Race 1 has a column per source, then the share: its headings once read "AP SHARE".
    for width in (1280, 390):
        page = chromium.new_page(viewport={"width": width, "height": 900})
        page.goto(f"{seeded}/race")
        gaps = page.evaluate(
            "() => [...document.querySelectorAll('.candidates thead tr')].flatMap((row) => {"
            " const boxes = [...row.children].map((th) => { const r = document.createRange();"
            " r.selectNodeContents(th); const b = r.getBoundingClientRect();"
            " return [th.textContent.trim(), b.left, b.right]; });"
            " return boxes.slice(1).map((b, i) => [boxes[i][0], b[0], b[1] - boxes[i][2]]); })"
        )
        keep(page, f"race-headings-{width}.png")
        assert [(a, b) for a, b, _ in gaps[:3]] == [("Candidate", "AP"), ("AP", "SOS"),
                                                    ("SOS", "Share")]
        # Whatever the width, a heading's text ends at least 8 px before the next one's.
        assert all(gap >= 8 for _, _, gap in gaps), (width, gaps)


def test_a_missing_race_is_a_styled_page_with_a_way_back(chromium, seeded):
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    response = page.goto(f"{seeded}/race/99")
    assert response.status == 404
    assert page.title() == "404 Not Found · Rome"
    card = page.locator(".error-page")
    assert card.evaluate("e => getComputedStyle(e).borderTopColor") == "rgb(138, 28, 28)"
    assert page.locator("[data-error]").text_content() == "No race with id 99."
    keep(page, "error-page.png")
    page.click("text=← All races")
    page.wait_for_url(f"{seeded}/race")
    assert page.locator("[data-race]").count() == 3


def test_a_source_going_stale_says_why_and_live_again_says_nothing(chromium, site):
    base, url, _ = site
    page = watch(chromium, base, "/race")
    mc = '[data-race="2"] [data-source="mc"]'
    assert page.locator(f"{mc} [data-stale-reason]").is_hidden()
    # Every report as if it came two minutes ago: every source is silent too long.
    engine = create_engine(url)
    with engine.begin() as connection:
        # When a source was heard is its tallies' and race statuses' newest time.
        connection.execute(sql(
            "UPDATE tallies SET last_update_at = datetime(last_update_at, '-120 seconds')"))
        connection.execute(sql(
            "UPDATE race_status SET updated_at = datetime(updated_at, '-120 seconds')"))
        heard = [*connection.execute(sql(
            "SELECT last_update_at FROM tallies WHERE source_id = 'mc'")).scalars(),
                 *connection.execute(sql(
            "SELECT updated_at FROM race_status WHERE source_id = 'mc'")).scalars()]
    engine.dispose()
    page.wait_for_function(
        "([selector]) => !document.querySelector(selector).hidden",
        arg=[f"{mc} [data-stale-reason]"], timeout=10_000,
    )
    since = max(heard)[11:19]
    reason = f"No report since {since} UTC; a source is stale after 20 s without one."
    assert text(page, f"{mc} [data-stale-reason]") == reason
    assert text(page, f"{mc} [data-state]") == "Stale"
    assert page.locator(f"{mc} [data-state]").get_attribute("title") == reason
    keep(page, "race-stale.png")
    webapp.record(url, race_snapshot("mc", 9, {201: 210, 202: 250}))
    page.wait_for_function(
        "([selector]) => document.querySelector(selector).hidden",
        arg=[f"{mc} [data-stale-reason]"], timeout=10_000,
    )
    assert text(page, f"{mc} [data-state]") == "Live"
    assert page.locator(f"{mc} [data-state]").get_attribute("title") is None
    assert page.evaluate("window.sameDocument") is True
    assert page.outside == [] and page.errors == []


def test_the_headline_follows_the_first_source_with_figures(chromium, site):
    base, url, _ = site
    wipe = urllib.request.Request(f"{base}/race/wipeout", method="POST",
                                  headers={"Authorization": f"Bearer {TOKEN}"})
    urllib.request.urlopen(wipe, timeout=10).close()
    page = watch(chromium, base, "/race")
    per = '[data-race="1"] [data-per]'
    votes_head = '[data-race="1"] thead th:not(.by-source).num'
    assert page.locator(per).is_hidden() and page.text_content(TOTAL.format(1)) == "0"
    # The state reports the race first: the headline, and the votes column, are its
    # figures. The page is drawn anew for that column, once.
    webapp.record(url, race_snapshot("sos", 7, webapp.SOS_RACE_1, race_id=1))
    page.wait_for_function(
        "([selector]) => document.querySelector(selector).textContent === '1,112'",
        arg=[TOTAL.format(1)], timeout=10_000,
    )
    assert page.evaluate("window.sameDocument") is None
    assert text(page, per) == "per SOS, state level" and text(page, votes_head) == "SOS"
    # Then AP, first in the catalog: the headline is AP's.
    page.evaluate("window.sameDocument = true")
    webapp.record(url, race_snapshot("ap", 7, webapp.AP_V2))
    page.wait_for_function(
        "([selector]) => document.querySelector(selector).textContent === '1,122'",
        arg=[TOTAL.format(1)], timeout=10_000,
    )
    assert page.evaluate("window.sameDocument") is None
    assert text(page, per) == "per AP, state level" and text(page, votes_head) == "AP"
    assert text(page, '[data-race="1"] tbody [data-candidate="102"] [data-by-source="sos"]') == (
        "590")
    # From then on the figures change in place.
    page.evaluate("window.sameDocument = true")
    webapp.record(url, race_snapshot("ap", 8, {**webapp.AP_V2, 102: 700}))
    page.wait_for_function(
        "([selector]) => document.querySelector(selector).textContent === '1,222'",
        arg=[TOTAL.format(1)], timeout=10_000,
    )
    assert page.evaluate("window.sameDocument") is True
    assert page.outside == [] and page.errors == []


def test_the_page_follows_a_real_pipeline(chromium, tmp_path, unique):
    # Worker and beat on the embedded default: the simulated feeds, in their formats.
    env = {
        "ROME_DATA_DIR": str(tmp_path / "data"),
        "ROME_DATABASE_URL": "",
        "ROME_BROKER_URL": "",
        "ROME_SOURCE_INTERVAL": "0.3",
        "ROME_UPDATE_CHANCE": "1",
        "ROME_SEED": unique,
    }
    processes = Processes(env, tmp_path)
    upgraded = processes.run([sys.executable, "-m", "rome", "db", "upgrade"])
    assert upgraded.returncode == 0, upgraded.stderr
    try:
        base = serve(processes)
        processes.worker()
        processes.beat()
        # Until every source has reported, a race's headline source (and so the
        # vote types it shows) may change, and the page would rightly reload.
        wait_for(lambda: all(source["level"] for race in get_json(f"{base}/api/races")["races"]
                             for source in race["sources"]),
                 60, what="every source to report every race")
        page = watch(chromium, base, "/race")
        before = page.text_content(TOTAL.format(1))
        page.wait_for_function(
            "([selector, before]) => document.querySelector(selector).textContent !== before",
            arg=[TOTAL.format(1), before], timeout=15_000,
        )
        assert page.evaluate("window.sameDocument") is True
        assert page.locator('[data-race="1"] [data-source="ap"] [data-state]').text_content() == (
            "Live")
        keep(page, "race-page-live.png")
        # Real figures in two columns of sources still fit their cards.
        assert overflowing(page) == []
        assert page.outside == [] and page.errors == []
    finally:
        processes.stop()
    for name, proc in processes.procs.items():
        # A pipeline process that died on its own is a failure of the run.
        assert proc.returncode in (0, -15), f"{name} exited {proc.returncode}:\n" + (
            processes.log(name)[-3000:]
        )


def test_feed_names_cannot_reverse_figures_or_hide_the_votes(chromium, seeded, database_url):
    # A right-to-left override in a name once reversed what followed it (the race link's
    # arrow, the party and "Leading" badges), and a 292-character name pushed the Votes
    # column out of its card (issue 23).
    webapp.record(database_url, webapp.hostile())
    for width in (1280, 390):
        page = chromium.new_page(viewport={"width": width, "height": 900})
        with page.expect_response(lambda r: r.url.endswith("/api/races") and r.status == 200):
            page.goto(f"{seeded}/race")  # live.js has drawn the page once the answer came
        page.wait_for_timeout(300)
        card = page.locator(".race", has_text="Mayor of Testville")
        keep(page, f"race-hostile-names-{width}.png")
        assert overflowing(page) == [], width
        box = card.bounding_box()
        for votes in card.locator("tbody [data-votes]").all():
            cell = votes.bounding_box()
            assert box["x"] <= cell["x"] and cell["x"] + cell["width"] <= box["x"] + box["width"]
        eve = card.locator("tbody tr", has_text="Eve")
        name, party, leading = (eve.locator(s).bounding_box()
                                for s in (".name", ".party", "[data-leading]"))
        # In reading order: the name, its party, then the badge (on that line or the next).
        assert (party["x"] >= name["x"] + name["width"] - 1
                or party["y"] >= name["y"] + name["height"] - 1)
        assert leading["y"] > party["y"] + 1 or leading["x"] >= party["x"] + party["width"]
        # Clipped, whole in its title.
        long = card.locator("tbody .name", has_text="Maximiliana")
        assert long.evaluate("e => e.scrollHeight > e.clientHeight")
        assert long.get_attribute("title").endswith(webapp.LONG_LAST)
        # live.js redraws the level-disagreement lines: names in them stay isolated too.
        flagged = card.locator("[data-disagreements] li bdi", has_text="Maximiliana")
        assert flagged.count() == 0  # the line names the last name only
        assert card.locator("[data-disagreements] li bdi").count() >= 1
        assert card.locator("[data-disagreements] li bdi").first.get_attribute("title")
        assert card.locator("[data-disagreements] li").count() == card.locator(
            "[data-disagreements] li bdi").count()
        page.close()


def test_the_index_finds_races_as_you_type_and_a_state_page_lists_them(chromium, seeded,
                                                                         database_url):
    # The search runs in the browser over /api/index (web/static/index.js), under the
    # pages' Content-Security-Policy: nothing inline, nothing from elsewhere.
    from tests.helpers.builders import national_snapshot

    webapp.record(database_url, national_snapshot(300), webapp.hostile())
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{seeded}/index")
    assert page.locator("[data-matches]").is_hidden()
    assert page.locator(".state-group").count() == 50
    with page.expect_response(lambda r: r.url.endswith("/api/index") and r.status == 200):
        page.fill("#race-search", "ga house")
    matches = page.locator(".match-list li")
    matches.first.wait_for()
    names = [n.strip() for n in page.locator(".match-list li a bdi").all_text_contents()]
    assert names and all(n.startswith("GA ") and "House" in n for n in names)
    assert text(page, ".match-count").startswith(f"{len(names)} races match")
    assert page.url.endswith("/index?q=ga+house")  # a reload shows the same search
    keep(page, "index-search.png")
    # A name from a feed stays isolated when the script writes it.
    page.fill("#race-search", "testville")
    page.locator(".match-list li", has_text="Testville").wait_for()
    assert page.locator(".match-list li a bdi").first.get_attribute("title") == (
        webapp.HOSTILE_RACE)
    page.fill("#race-search", "")
    page.locator("[data-matches]").wait_for(state="hidden")
    page.click(".state-group h2 a >> text=GA")
    page.wait_for_url(f"{seeded}/state/GA")
    assert page.locator("table.state-races tbody tr").count() == 6
    keep(page, "state-page.png")
    assert problems == []


def test_the_static_race_page_polls_its_published_json_and_sees_a_number_change(chromium,
                                                                                 site):
    from rome.publish.publisher import Publisher
    from rome.store import db

    base, url, _ = site
    folder = Path(site[2].env["ROME_DATA_DIR"]) / "public"
    database = db.connect(url)
    Publisher(folder).publish_from(database)
    page = chromium.new_page()
    page.goto(f"{base}/live/races/1.html")
    page.wait_for_function("() => document.querySelector('[data-total]').textContent !== '…'",
                           timeout=10_000)
    before = text(page, "[data-total]")
    assert before == f"{get_json(f'{base}/api/races/1')['total_votes']:,}"
    webapp.record(url, race_snapshot("ap", 7, {101: 9_000, 102: 8_000}))
    Publisher(folder).publish_from(database, {1})
    database.engine.dispose()
    page.wait_for_function(
        "([before]) => document.querySelector('[data-total]').textContent !== before",
        arg=[before], timeout=10_000)
    assert text(page, "[data-total]") == f"{get_json(f'{base}/api/races/1')['total_votes']:,}"
    assert text(page, '[data-candidate="101"] .votes') == "9,000"
    keep(page, "static-race-page.png")


def test_the_static_race_page_judges_each_source_by_sources_json_and_the_servers_clock(
        chromium, site):
    from rome.publish.publisher import SOURCES, Publisher
    from rome.read.freshness import stale_after, stale_reason
    from rome.store import db

    base, url, processes = site
    folder = Path(processes.env["ROME_DATA_DIR"]) / "public"
    after = stale_after(1, 0.3)  # the site's: 20 s
    # Race 1: the Secretary of State reports it now; AP last reported 10 s ago, in every race.
    webapp.record(url, race_snapshot("sos", 2, webapp.SOS_RACE_1, race_id=1))
    heard = datetime.now(UTC) - timedelta(seconds=10)
    engine = create_engine(url)
    with engine.begin() as connection:
        at = {"at": heard.strftime("%Y-%m-%d %H:%M:%S.%f")}
        connection.execute(sql("UPDATE tallies SET last_update_at = :at WHERE source_id = 'ap'"),
                           at)
        connection.execute(sql("UPDATE race_status SET updated_at = :at WHERE source_id = 'ap'"),
                           at)
    engine.dispose()
    database = db.connect(url)
    Publisher(folder, after).publish_from(database)
    race_file = (folder / "races/1.json").read_bytes()
    [ap] = [s for s in json.loads(race_file)["sources"] if s["id"] == "ap"]
    assert ap["stale"] is False and ap["stale_reason"] is None  # as of this publish
    ap_, sos_ = '[data-source="ap"]', '[data-source="sos"]'

    page = chromium.new_page()
    errors: list[str] = []
    # Chromium asks for /favicon.ico, which the folder has none of: that 404 aside (it
    # is not among the page's own responses), a console error is a fault.
    page.on("console", lambda m: m.type == "error" and "status of 404" not in m.text
            and errors.append(m.text))
    failed: list[str] = []
    page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))
    # The browser's clock an hour ahead of the server's: the page goes by the server's.
    page.clock.install(time=datetime.now(UTC) + timedelta(hours=1))
    page.clock.resume()
    page.goto(f"{base}/live/races/1.html")
    page.wait_for_function("() => document.querySelectorAll('[data-state]').length === 2 &&"
                           " [...document.querySelectorAll('[data-state]')]"
                           ".every((s) => s.textContent)", timeout=10_000)
    assert text(page, f"{ap_} [data-state]") == "Live"
    assert text(page, f"{sos_} [data-state]") == "Live"
    assert text(page, f"{ap_} [data-votes]") == f"{ap['votes']:,} votes"
    assert page.locator(f"{ap_} [data-stale-reason]").is_hidden()

    # No report, no publish, no file changed: AP goes stale by the clock alone.
    page.wait_for_function(
        "([selector]) => document.querySelector(selector).textContent === 'Stale'",
        arg=[f"{ap_} [data-state]"], timeout=20_000)
    reason = stale_reason(heard, after)
    assert text(page, f"{ap_} [data-stale-reason]") == reason
    assert page.locator(f"{ap_} [data-state]").get_attribute("title") == reason
    assert text(page, f"{sos_} [data-state]") == "Live"
    assert (folder / "races/1.json").read_bytes() == race_file  # still says stale false
    keep(page, "static-race-stale.png")

    # AP reports again, in race 3 only: race 1's file stays as it is, sources.json moves.
    webapp.record(url, race_snapshot("ap", 2, {301: 320, 302: 300}, race_id=3))
    done = Publisher(folder, after).publish_from(database, {3})
    database.engine.dispose()
    assert SOURCES in done.written and "races/1.json" not in done.written
    page.wait_for_function(
        "([selector]) => document.querySelector(selector).textContent === 'Live'",
        arg=[f"{ap_} [data-state]"], timeout=10_000)
    assert page.locator(f"{ap_} [data-stale-reason]").is_hidden()
    assert page.locator(f"{ap_} [data-state]").get_attribute("title") is None
    assert (folder / "races/1.json").read_bytes() == race_file
    keep(page, "static-race-live-again.png")
    assert errors == [] and failed == []
