"""CSV export of the results and of a race's history (issue 12, point 10)."""

import csv
import io

from rome.store import db, tally


def rows(response):
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_results_csv_has_a_row_per_race_candidate_and_source(client):
    table = rows(client.get("/api/races.csv"))
    trump = next(r for r in table if r["last"] == "Trump")
    assert (trump["race_id"], trump["source"], trump["votes"], trump["headline"]) == (
        "1", "ap", "480", "True")
    assert {r["source"] for r in table} == {"ap", "mc", "sos"}


def test_history_csv_names_every_column_and_candidate(client):
    table = rows(client.get("/api/races/1/history.csv"))
    assert table and set(table[0]) == {"at", "race_id", "source", "level", "candidate_id",
                                       "first", "last", "votes"}
    assert {(r["last"], r["votes"]) for r in table} >= {("Trump", "480"), ("Clinton", "513")}
    assert client.get("/api/races/99/history.csv").status_code == 404


def test_a_name_that_would_be_a_spreadsheet_formula_is_defused(client, database_url):
    from rome.feeds.snapshot import CandidateRef, Count, RaceRef, Snapshot, UnitRef

    evil = '=HYPERLINK("http://evil.example","x")'
    hostile = Snapshot("feed", "ap", 1, 1.0, (RaceRef("XX-1", "Mayor"),),
                       (UnitRef("XX", "XX", "state"),),
                       (CandidateRef("XX-1", "7", "Eve", evil, "IND"),),
                       (Count("XX-1", "XX", "7", 5),))
    database = db.connect(database_url)
    with database.Session.begin() as session:
        tally.record_snapshots(session, [hostile])
    database.engine.dispose()
    body = client.get("/api/races.csv").get_data(as_text=True)
    assert "'=HYPERLINK" in body and ",=HYPERLINK" not in body and ',"=HYPERLINK' not in body
