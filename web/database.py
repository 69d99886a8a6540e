"""Hand request handlers the app's one Rome database."""

from __future__ import annotations

from flask import current_app

from rome.db import Database


def database() -> Database:
    """Return the Database that create_app connected for the current app."""
    return current_app.extensions["rome_db"]
