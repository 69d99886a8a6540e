"""The results page in headless Chromium: live numbers over a real pipeline, the wipeout form,
and on a seeded database how links and errors look.

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
from pathlib import Path

import pytest
from conftest import missing_service
from werkzeug.serving import make_server

from support import Processes, wait_for

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "browser-admin-token"
TOTAL = '[data-race="{}"] [data-total]'


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


@pytest.fixture
def site(tmp_path, unique):
    """Run worker, beat and gunicorn (two workers) on the embedded default; yield its URL."""
    env = {
        "ROME_DATA_DIR": str(tmp_path / "data"),
        # Empty means the embedded default, whatever the developer's shell says.
        "ROME_DATABASE_URL": "",
        "ROME_BROKER_URL": "",
        "ROME_SECRET_KEY": "",
        "ROME_SOURCE_INTERVAL": "0.3",
        "ROME_UPDATE_CHANCE": "1",
        "ROME_SEED": unique,
        "ROME_ADMIN_TOKEN": TOKEN,
    }
    processes = Processes(env, tmp_path)
    upgraded = processes.run([sys.executable, "-m", "rome.cli", "db", "upgrade"])
    assert upgraded.returncode == 0, upgraded.stderr
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Two workers: a form served by one must be accepted by the other.
    processes.start("web", [sys.executable, "-m", "gunicorn", "-c", "python:web.gunicorn_conf",
                            "-w", "2", "-b", f"127.0.0.1:{port}", "web:create_app()"])
    processes.worker()
    processes.beat()

    def serving():
        try:
            return get_json(f"{base}/livez")
        except OSError:
            return None

    wait_for(serving, 30, what="gunicorn to serve")
    yield base, processes
    processes.stop()
    for name, proc in processes.procs.items():
        # A pipeline process that died on its own is a failure of the run.
        assert proc.returncode in (0, -15), f"{name} exited {proc.returncode}:\n" + (
            processes.log(name)[-3000:]
        )


@pytest.fixture
def seeded(app):
    """Serve the seeded test app (tests/webapp.py) on a free port; yield its URL."""
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


def test_the_page_lives_and_the_form_wipes_out_only_with_the_token(chromium, site, tmp_path):
    base, processes = site
    wait_for(lambda: min(totals(base)) > 0, 30, what="every race to have votes")

    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    outside, errors = [], []
    page.on("request", lambda r: r.url.startswith(base) or outside.append(r.url))
    # The refused form posts answer 401, which Chromium reports; anything else is a fault.
    page.on("console", lambda m: m.type == "error" and "status of 401" not in m.text
            and errors.append(m.text))
    page.goto(f"{base}/race")
    assert page.title() == "Live election results · Rome"
    before = page.text_content(TOTAL.format(1))
    page.evaluate("window.sameDocument = true")
    # The numbers change while we watch, with no reload.
    page.wait_for_function(
        "([selector, before]) => document.querySelector(selector).textContent !== before",
        arg=[TOTAL.format(1), before], timeout=10_000,
    )
    assert page.evaluate("window.sameDocument") is True
    assert page.locator('[data-source="ap"] [data-state]').text_content() == "Live"
    keep(page, "race-page.png")

    # A phone: nothing wider than the screen.
    phone = chromium.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    phone.goto(f"{base}/race")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    keep(phone, "race-page-phone.png")

    # One race's page draws its chart and redraws it as votes arrive.
    detail = chromium.new_page(viewport={"width": 1280, "height": 900})
    detail.goto(f"{base}/race/1")
    detail.wait_for_function(
        "() => { const img = document.querySelector('img[data-chart]');"
        " return img.complete && img.naturalWidth > 0 && img.currentSrc.includes('v='); }",
        timeout=10_000,
    )
    keep(detail, "race-one.png")

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

    # Quiet the sources, so that what the wipeout leaves is plain to see.
    processes.stop("beat")
    last: dict = {}

    def drained():
        now = totals(base)
        done = last.get("totals") == now
        last["totals"] = now
        return done

    wait_for(drained, 30, interval=1.5, what="the pipeline to drain")
    page.fill("input[name=token]", TOKEN)
    page.check("input[name=confirm]")
    page.click("form.wipeout button")
    page.wait_for_url(f"{base}/race")
    assert page.locator(".flash").text_content().startswith("Wiped out ")
    assert [page.text_content(TOTAL.format(i)) for i in (1, 2, 3)] == ["0", "0", "0"]
    assert page.locator("[data-state]").all_text_contents() == ["Waiting"] * 3
    assert totals(base) == [0, 0, 0]
    wiped = [line for line in processes.log("web").splitlines() if "event=wipeout " in line]
    assert len(wiped) == 1 and "via=form" in wiped[0] and "remote_addr=127.0.0.1" in wiped[0]
    assert outside == [] and errors == []


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
