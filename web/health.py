"""Report whether the database and the broker can be reached."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from flask import Blueprint, current_app, jsonify
from kombu import Connection
from sqlalchemy import text

from rome.logs import log
from web.database import database

bp = Blueprint("health", __name__)
logger = logging.getLogger("rome.web")


def check_database() -> str:
    """Run SELECT 1 and return "ok", or "unavailable" and log why."""
    try:
        with database().engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure is the answer, not a crash
        return _unavailable("database", _message(exc))
    return "ok"


def check_broker() -> str:
    """Connect to the broker (or check its folders): "ok", or "unavailable" and log why."""
    url = current_app.config["BROKER_URL"]
    options = current_app.config.get("BROKER_TRANSPORT_OPTIONS") or {}
    if url.startswith("filesystem://"):
        # The filesystem transport has no server: it works when its folders do.
        for key in ("data_folder_in", "data_folder_out", "control_folder"):
            folder = options.get(key)
            if folder is None:
                continue
            if not Path(folder).is_dir():
                return _unavailable("broker", f"broker folder {folder} does not exist")
            if not os.access(folder, os.W_OK | os.X_OK):
                return _unavailable("broker", f"broker folder {folder} is not writable")
        return "ok"
    nodes = url.count(";") + 1  # a cluster lists every node; one answering is enough
    try:
        with Connection(url, transport_options=options, connect_timeout=2) as connection:
            # Try each node once more at once: a probe should answer fast, not back off.
            connection.ensure_connection(max_retries=nodes, interval_start=0,
                                         timeout=2 * nodes)
    except Exception as exc:  # any failure is the answer, not a crash
        return _unavailable("broker", _message(exc))
    return "ok"


def _unavailable(check: str, error: str) -> str:
    # The driver's text names hosts, users and paths: for the log, not for
    # whoever asks /healthz.
    log(logger, "health_check_failed", logging.WARNING, check=check, error=error)
    return "unavailable"


def _message(exc: Exception) -> str:
    return str(getattr(exc, "orig", None) or exc) or type(exc).__name__


@bp.get("/livez")
def livez():
    """Answer 200 while this process serves requests, touching nothing else."""
    # Liveness, not readiness: a database outage must not get the web restarted.
    return jsonify(status="ok")


@bp.get("/healthz")
def healthz():
    """Answer 200 when the database and broker both work, else 503 naming which did not."""
    checks = {"database": check_database(), "broker": check_broker()}
    healthy = all(value == "ok" for value in checks.values())
    return jsonify(status="ok" if healthy else "error", **checks), 200 if healthy else 503
