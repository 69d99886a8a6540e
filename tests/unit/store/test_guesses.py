"""The wipeout's guesses: a sliding window per client, shared by every process on the database."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import delete, func, select

from rome.store import db
from rome.store.guesses import forget, take_slot, wait_for
from rome.store.models import WipeoutGuessRow

LIMIT, WINDOW = 20, 900.0


@pytest.fixture
def guesses(database):
    with database.Session.begin() as session:
        session.execute(delete(WipeoutGuessRow))
    return database


def guess(database, client: str, now: float):
    with database.Session.begin() as session:
        return take_slot(session, client, now, LIMIT, WINDOW)


def test_a_burst_on_each_side_of_a_window_edge_gets_the_limit_and_no_more(guesses):
    # The probe of issue 22: one guess opens a fixed window, 19 more just before
    # its end, 20 just after. A fixed window counted 40 in 17 s; a sliding one
    # lets through only the guess that has left it since.
    assert guess(guesses, "a", 0.0) == (None, 1)
    assert [guess(guesses, "a", 890.0 + i * 0.1)[0] for i in range(19)] == [None] * 19
    after = [guess(guesses, "a", 901.0 + i * 0.1) for i in range(20)]
    assert after[0] == (None, 20)  # the guess at 0 s left the window
    assert [wait for wait, _ in after[1:]] == [pytest.approx(890.0 + 900 - 901.1 - i * 0.1)
                                               for i in range(19)]
    checked = [0.0] + [890 + i * 0.1 for i in range(19)] + [901.0]
    # Never more than LIMIT in any window of WINDOW seconds.
    assert max(sum(t <= at < t + WINDOW for at in checked) for t in checked) == LIMIT
    with guesses.Session() as session:
        assert wait_for(session, "a", 1789.9, LIMIT, WINDOW) == 1.0  # a second at least
        assert wait_for(session, "a", 1790.05, LIMIT, WINDOW) is None  # 890.0 has left
        assert wait_for(session, "b", 901.0, LIMIT, WINDOW) is None


def test_old_guesses_are_pruned_and_a_granted_client_starts_afresh(guesses):
    for i in range(LIMIT):
        guess(guesses, "a", float(i))
    guess(guesses, "b", 5000.0)  # every client's guesses older than the window go
    with guesses.Session() as session:
        assert session.scalar(select(func.count()).select_from(WipeoutGuessRow)) == 1
    for _ in range(LIMIT):
        guess(guesses, "a", 6000.0)
    assert guess(guesses, "a", 6000.0)[0] == WINDOW
    with guesses.Session.begin() as session:
        forget(session, "a")
    assert guess(guesses, "a", 6000.0) == (None, 1)


def test_two_processes_racing_for_the_last_guesses_check_no_more_than_the_limit(pg_url):
    """Two engines (two gunicorn workers), 8 threads each, 100 guesses at the same moment."""
    engines = [db.prepare(pg_url), db.connect(pg_url)]
    with engines[0].Session.begin() as session:
        session.execute(delete(WipeoutGuessRow))
    counted, start = [], threading.Barrier(16)

    def guesser(database):
        start.wait()
        for _ in range(100 // 16 + 1):
            wait, _held = guess(database, "racer", 100.0)
            counted.append(wait is None)

    threads = [threading.Thread(target=guesser, args=(engines[i % 2],)) for i in range(16)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with engines[0].Session() as session:
            rows = session.scalar(select(func.count()).select_from(WipeoutGuessRow))
    finally:
        for database in engines:
            database.engine.dispose()
    assert sum(counted) == rows == LIMIT
