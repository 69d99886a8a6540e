"""Hand request handlers the app's one Rome database, and its results as of now."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import current_app

from rome.read.results_cache import ListingState, ResultsState
from rome.store.db import Database


def database() -> Database:
    """Return the Database that create_app connected for the current app."""
    return current_app.extensions["rome_db"]


def results() -> ResultsState:
    """Return every race as of now, from the app's cache when the database has not changed."""
    return current_app.extensions["rome_results"].get(
        database(), datetime.now(UTC), current_app.config["STALE_AFTER"]
    )


def listing() -> ListingState:
    """Return what filtered reads share as of now (a page, a state, the index), per version."""
    return current_app.extensions["rome_results"].listing(
        database(), datetime.now(UTC), current_app.config["STALE_AFTER"]
    )
