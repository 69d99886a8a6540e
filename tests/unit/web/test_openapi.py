"""Check the API against its OpenAPI document with schemathesis: no 5xx, every answer fits it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

import web
from tests.helpers.webapp import TOKEN, clean_env, dispose, make_app, night, record, seed
from web.openapi import build, dumps
from web.wipeout import WIPEOUT_GUESSES

SPEC = Path(web.__file__).with_name("openapi.json")
# Loaded at import, not from a fixture: schemathesis's fixture loader needs
# a pytest internal (node._nodeid) that pytest 9 no longer has.
schema = schemathesis.openapi.from_path(SPEC)


# The seed alone leaves a source waiting (nulls); the night adds a call, vote
# types, precincts, corrections, level and source disagreements, test data.
@pytest.fixture(params=["seed", "night"])
def app(request, tmp_path, monkeypatch):
    clean_env(monkeypatch, tmp_path)
    url = f"sqlite:///{tmp_path / 'rome.sqlite3'}"
    seed(url)
    if request.param == "night":
        record(url, *night())
    app = make_app(url, tmp_path)
    yield app
    dispose(app)


def test_the_committed_document_is_a_fresh_build():
    # Shapes and routes are declared in code: regenerate rather than edit the file.
    assert SPEC.read_text() == dumps(build()), (
        "web/openapi.json is stale: run python -m web.openapi > web/openapi.json"
    )


def test_the_app_serves_this_document(app):
    response = app.test_client().get("/api/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == json.loads(SPEC.read_text())


# Every test run asks each operation a few cases; the slow group (CI) asks 60.
QUICK, THOROUGH = 15, 60
GENERATION = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


@schema.parametrize()
@settings(max_examples=QUICK, **GENERATION)
def test_every_operation_answers_as_documented(case, app):
    case.call_and_validate(app=app)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=THOROUGH, **GENERATION)
def test_every_operation_answers_as_documented_thoroughly(case, app):
    case.call_and_validate(app=app)


def test_a_stopped_guesser_gets_the_documented_429(app):
    client = app.test_client()
    for i in range(WIPEOUT_GUESSES + 1):
        response = client.post("/race/wipeout", headers={"Authorization": f"Bearer wrong-{i}"})
    assert response.status_code == 429
    documented = json.loads(SPEC.read_text())["paths"]["/race/wipeout"]["post"]["responses"]
    assert "429" in documented and "Retry-After" in documented["429"]["headers"]
    schema["/race/wipeout"]["POST"].validate_response(response)


def test_the_original_rows_answer_as_documented(app):
    # Schemathesis asks for /race as a browser would (HTML): ask for its JSON here.
    response = app.test_client().get("/race", headers={"Accept": "application/json"})
    assert response.status_code == 200 and response.get_json()
    schema["/race"]["GET"].validate_response(response)


def test_a_granted_wipeout_answers_as_documented(app):
    # Schemathesis never guesses the admin token: the 200 is checked here.
    response = app.test_client().post("/race/wipeout",
                                      headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and response.get_json()
    schema["/race/wipeout"]["POST"].validate_response(response)
