"""Wipe out from the page's form: admin token, confirmation and a CSRF token, all required."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadSignature

from tests.helpers.builders import race_snapshot
from tests.helpers.webapp import TOKEN, VOTES, dispose, make_app, record
from web.csrf import SessionKeyError


def form_token(client) -> str:
    html = client.get("/race").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def total(client) -> int:
    return sum(race["total_votes"] for race in client.get("/api/races").get_json()["races"])


def post_form(client, **fields):
    return client.post("/race/wipeout", data=fields, headers={"Origin": "http://localhost"})


def test_the_page_offers_the_form_with_a_token_and_a_confirmation(client):
    html = client.get("/race").get_data(as_text=True)
    assert '<form method="post" action="/race/wipeout" class="wipeout">' in html
    assert 'type="password" name="token"' in html
    assert 'type="checkbox" name="confirm" value="yes" required' in html
    assert len(form_token(client)) >= 40


def test_the_form_token_lives_in_a_strict_same_site_session_cookie(client):
    response = client.get("/race")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("rome_session=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert set(response.headers["Cache-Control"].split(", ")) == {"private", "no-cache"}
    assert "Cookie" in response.vary


def test_the_form_wipes_out_with_token_confirmation_and_csrf(client, caplog):
    token = form_token(client)
    with caplog.at_level(logging.INFO, logger="rome.web"):
        response = post_form(client, csrf_token=token, token=TOKEN, confirm="yes")
    assert response.status_code == 303
    assert response.headers["Location"] == "/race"
    assert total(client) == 0
    page = client.get("/race").get_data(as_text=True)
    assert f"Wiped out {len(VOTES)} tallies and {len(VOTES)} history rows." in page
    [record] = [r for r in caplog.records if "event=wipeout " in r.getMessage()]
    message = record.getMessage()
    assert "via=form" in message and "origin=http://localhost" in message
    assert re.search(r"at=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", message)


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"token": TOKEN, "confirm": "yes"}, 403, "expired or was sent from another site"),
        ({"csrf_token": "forged", "token": TOKEN, "confirm": "yes"}, 403, "another site"),
        ({"csrf_token": None, "token": TOKEN}, 400, "Tick the box to confirm"),
        ({"csrf_token": None, "confirm": "yes"}, 401, "Enter the admin token."),
        ({"csrf_token": None, "token": "", "confirm": "yes"}, 401, "Enter the admin token."),
        ({"csrf_token": None, "token": "wrong-token", "confirm": "yes"}, 401, "token is wrong"),
        ({"csrf_token": None, "token": TOKEN + "x", "confirm": "yes"}, 401, "token is wrong"),
    ],
)
def test_the_form_refuses_anything_less(client, caplog, fields, status, message):
    if "csrf_token" in fields and fields["csrf_token"] is None:
        fields = {**fields, "csrf_token": form_token(client)}
    with caplog.at_level(logging.INFO, logger="rome.web"):
        response = post_form(client, **fields)
    assert response.status_code == status
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert message in html and 'role="alert"' in html
    assert "<details id=\"wipeout\" open>" in html
    assert total(client) == 1038 + 450 + 600
    assert any("event=wipeout_refused via=form" in r.getMessage() for r in caplog.records)


def test_a_token_from_another_session_is_refused(app, client):
    stolen = form_token(app.test_client())
    response = post_form(client, csrf_token=stolen, token=TOKEN, confirm="yes")
    assert response.status_code == 403


def test_every_worker_signs_sessions_with_the_same_key(database_url, tmp_path):
    # Two apps stand for two gunicorn workers with the same environment.
    first = make_app(database_url, tmp_path)
    second = make_app(database_url, tmp_path)
    try:
        client = first.test_client()
        token = form_token(client)
        cookie = client.get_cookie("rome_session")
        other = second.test_client()
        other.set_cookie("rome_session", cookie.value)
        response = post_form(other, csrf_token=token, token=TOKEN, confirm="yes")
    finally:
        dispose(first)
        dispose(second)
    assert response.status_code == 303


def test_the_session_key_is_the_configured_secret_or_a_random_one_kept_in_the_data_dir(
    database_url, tmp_path
):
    configured = make_app(database_url, tmp_path, SECRET_KEY="a-configured-secret-key")
    stored = make_app(database_url, tmp_path)
    other_token = make_app(database_url, tmp_path, ADMIN_TOKEN="another-admin-token")
    elsewhere = make_app(database_url, tmp_path, DATA_DIR=str(tmp_path / "elsewhere"))
    disabled = make_app(database_url, tmp_path, ADMIN_TOKEN=None)
    for app in (configured, stored, other_token, elsewhere, disabled):
        dispose(app)
    assert configured.secret_key == "a-configured-secret-key"
    key_file = Path(stored.config["DATA_DIR"]) / "web-session-key"
    assert re.fullmatch(r"[0-9a-f]{64}", stored.secret_key)
    assert key_file.read_text().strip() == stored.secret_key
    assert key_file.stat().st_mode & 0o777 == 0o600
    # The same for every process of one deployment, whatever the token; another
    # deployment (another data folder) gets its own.
    assert other_token.secret_key == stored.secret_key
    assert elsewhere.secret_key != stored.secret_key
    assert disabled.secret_key is None


def test_the_session_cookie_confirms_no_guess_at_the_admin_token(client):
    # Anyone can GET /race and take the signed cookie home. Signing it with a
    # key made from the token would let them test guesses offline (the right
    # guess verifies the signature); no function of the token may verify it.
    cookie = client.get("/race").headers["Set-Cookie"].split(";")[0].partition("=")[2]
    scrypted = hashlib.scrypt(
        TOKEN.encode(), salt=b"rome-web-session-v1", n=2**14, r=8, p=1, dklen=32
    )
    for guess in (TOKEN, TOKEN.encode(), scrypted, hashlib.sha256(TOKEN.encode()).digest()):
        guesser = Flask("guesser")
        guesser.secret_key = guess
        signer = SecureCookieSessionInterface().get_signing_serializer(guesser)
        with pytest.raises(BadSignature):
            signer.loads(cookie)


def test_a_damaged_key_file_stops_the_app_with_its_path(database_url, tmp_path):
    key_file = tmp_path / "data" / "web-session-key"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text("not a key")
    with pytest.raises(SessionKeyError, match="web-session-key"):
        make_app(database_url, tmp_path)


def test_without_admin_token_the_form_is_disabled(database_url, tmp_path):
    app = make_app(database_url, tmp_path, ADMIN_TOKEN=None)
    client = app.test_client()
    page = client.get("/race")
    response = client.post("/race/wipeout", data={"token": TOKEN, "confirm": "yes"})
    remaining = total(client)
    dispose(app)
    html = page.get_data(as_text=True)
    assert "Wipeout is disabled" in html and "<form" not in html
    assert "Set-Cookie" not in page.headers  # no form, so no session
    assert response.status_code == 403
    assert "Wipeout is disabled" in response.get_data(as_text=True)
    assert remaining == 1038 + 450 + 600


def test_a_bearer_token_takes_the_api_route_even_with_a_form_body(client):
    response = client.post(
        "/race/wipeout",
        data={"token": "ignored", "confirm": "yes"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 200
    assert response.get_json() == {
        "current_counts": len(VOTES), "history": len(VOTES), "tallies": len(VOTES),
        "series": len(VOTES), "race_status": 3, "count_scopes": 3,
    }


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_a_client_that_keeps_guessing_is_stopped_and_the_log_stays_short(
    database_url, tmp_path, caplog
):
    now = [1000.0]
    app = make_app(database_url, tmp_path, WIPEOUT_CLOCK=lambda: now[0])
    client = app.test_client()
    guesser, other = {"REMOTE_ADDR": "203.0.113.9"}, {"REMOTE_ADDR": "198.51.100.1"}
    try:
        with caplog.at_level(logging.INFO, logger="rome.web"):
            statuses = [
                client.post("/race/wipeout", headers=bearer(f"guess-{i:04d}"),
                            environ_base=guesser).status_code
                for i in range(1200)
            ]
            # Refused unchecked, the right token too, until the window ends.
            blocked = client.post("/race/wipeout", headers=bearer(TOKEN), environ_base=guesser)
            elsewhere = client.post("/race/wipeout", headers=bearer("another-guess"),
                                    environ_base=other)
            now[0] += 901
            after = client.post("/race/wipeout", headers=bearer("guess-again"),
                                environ_base=guesser)
        remaining = total(client)
    finally:
        dispose(app)
    assert statuses[:20] == [401] * 20 and set(statuses[20:]) == {429}
    assert blocked.status_code == 429 and blocked.get_json()["error"].startswith("Too many")
    assert 880 <= int(blocked.headers["Retry-After"]) <= 900
    assert remaining == 1038 + 450 + 600
    assert elsewhere.status_code == 401  # another client is not held back
    assert after.status_code == 401  # a new window
    lines = [r.getMessage() for r in caplog.records if r.name == "rome.web"]
    # 20 refusals of the guesser, 1 when it was stopped, 1 summing up the
    # 1,181 it sent meanwhile, and 1 each for the other client and the new window.
    assert len(lines) == 24, "\n".join(lines)
    assert sum("event=wipeout_refused" in line for line in lines) == 22
    [limited] = [line for line in lines if "event=wipeout_limited" in line]
    assert "client=203.0.113.9" in limited and "guesses=20" in limited
    [summary] = [line for line in lines if "event=wipeout_refusals_summary" in line]
    assert "client=203.0.113.9 refused=1201 logged=20" in summary


def test_each_wrong_token_is_logged_with_the_client_however_many_refusals_came_first(
    database_url, tmp_path, caplog
):
    # The probe of issue 23: 40 POSTs without a token, then 24 wrong tokens.
    now = [1000.0]
    app = make_app(database_url, tmp_path, WIPEOUT_CLOCK=lambda: now[0])
    client = app.test_client()
    prober = {"REMOTE_ADDR": "203.0.113.7"}
    try:
        with caplog.at_level(logging.INFO, logger="rome.web"):
            untokened = [client.post("/race/wipeout", environ_base=prober).status_code
                         for _ in range(40)]
            guesses = [client.post("/race/wipeout", headers=bearer(f"guess-{i:04d}"),
                                   environ_base=prober).status_code for i in range(24)]
            now[0] += 901
            client.post("/race/wipeout", environ_base=prober)
    finally:
        dispose(app)
    assert set(untokened) == {401} and guesses == [401] * 20 + [429] * 4
    lines = [r.getMessage() for r in caplog.records if r.name == "rome.web"]
    wrong = [line for line in lines if 'reason="the admin token is wrong"' in line]
    assert len(wrong) == 20, "\n".join(lines)
    assert all("client=203.0.113.7" in line for line in wrong)
    missing = [line for line in lines if "needs an Authorization" in line]
    assert 1 <= len(missing) <= 11  # the first 10 of a window, and the new window's first
    assert "guess-" not in "\n".join(lines)  # never the token itself
    [summary] = [line for line in lines if "event=wipeout_refusals_summary" in line]
    assert "client=203.0.113.7 refused=64 logged=30" in summary


def test_a_burst_on_each_side_of_the_window_edge_gets_20_tokens_checked_not_40(
    database_url, tmp_path
):
    # The probe of issue 22: a fixed window let 20 wrong tokens through just
    # before its end and 20 more just after (40 in 17 s). A sliding window
    # checks one more only as each guess leaves it.
    now = [1000.0]
    app = make_app(database_url, tmp_path, WIPEOUT_CLOCK=lambda: now[0], WIPEOUT_GUESSES=20)
    client = app.test_client()
    prober = {"REMOTE_ADDR": "203.0.113.8"}

    def burst(count: int) -> list[int]:
        statuses = []
        for i in range(count):
            statuses.append(client.post("/race/wipeout", headers=bearer(f"guess-{i}"),
                                        environ_base=prober).status_code)
            now[0] += 0.4
        return statuses

    try:
        first = burst(1)
        now[0] = 1000 + 892  # 8 s before the first guess's window ends
        before = burst(19)
        now[0] = 1000 + 901  # 9 s after
        after = burst(20)
        right = client.post("/race/wipeout", headers=bearer(TOKEN), environ_base=prober)
    finally:
        dispose(app)
    assert first + before == [401] * 20
    assert after == [401] + [429] * 19  # only the first guess has left the window
    assert right.status_code == 429  # refused unchecked
    assert int(right.headers["Retry-After"]) == round(1892 + 900 - now[0])


def test_two_web_processes_on_one_database_share_the_limit(database_url, tmp_path):
    # Two gunicorn workers: each its own app, the database in common.
    apps = [make_app(database_url, tmp_path / str(i), WIPEOUT_GUESSES=20) for i in range(2)]
    clients = [app.test_client() for app in apps]
    guesser = {"REMOTE_ADDR": "203.0.113.10"}
    try:
        statuses = [clients[i % 2].post("/race/wipeout", headers=bearer(f"guess-{i}"),
                                        environ_base=guesser).status_code for i in range(40)]
    finally:
        for app in apps:
            dispose(app)
    assert statuses == [401] * 20 + [429] * 20


def test_the_form_stops_a_guesser_too(client):
    for _ in range(20):
        response = post_form(client, csrf_token=form_token(client), token="wrong-guess",
                             confirm="yes")
        assert response.status_code == 401
    response = post_form(client, csrf_token=form_token(client), token=TOKEN, confirm="yes")
    assert response.status_code == 429
    assert "Too many wrong admin tokens" in response.get_data(as_text=True)
    assert total(client) == 1038 + 450 + 600


def test_refusals_that_guess_nothing_do_not_stop_a_client(client):
    # A forged cross-site form fails CSRF before any token is read: it must not
    # let another site lock the admin's own address out.
    for _ in range(30):
        assert post_form(client, token="wrong", confirm="yes").status_code == 403
    response = post_form(client, csrf_token=form_token(client), token=TOKEN, confirm="yes")
    assert response.status_code == 303


def test_after_a_wipeout_the_next_report_brings_the_totals_back(client, database_url):
    html = client.get("/race").get_data(as_text=True)
    assert "each source's next report brings\n          its totals back" in html
    token = form_token(client)
    assert post_form(client, csrf_token=token, token=TOKEN, confirm="yes").status_code == 303
    # Cumulative figures: AP's next report is its whole count again, not an increment.
    record(database_url, race_snapshot("ap", 2, {101: 480, 102: 513, 103: 33, 104: 12}))
    assert total(client) == 1038
