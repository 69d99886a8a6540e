"""Report whether the database and the broker can be reached, and every queue is consumed."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from flask import Blueprint, Flask, current_app, jsonify
from kombu import Connection
from sqlalchemy import text

from rome.logs import log
from rome.ops.shared_check import SharedCheck
from web.database import database
from workers.queues import POLL_QUEUE, QUEUES, QUORUM_SUFFIX

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


def install(app: Flask) -> None:
    """Give app its broker and workers checks, shared by its threads: each runs (and logs a
    failure) at most once per HEALTH_CHECK_EVERY s, however often /healthz is asked."""
    def in_app(check):
        def run():
            with app.app_context():
                return check()
        return SharedCheck(run, app.config["HEALTH_CHECK_EVERY"])

    app.extensions["rome_broker_check"] = in_app(check_broker)
    app.extensions["rome_workers_check"] = in_app(check_consumers)


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


def required_queues() -> list[str]:
    """The queues that must have a consumer: the poll queue only when ROME_SOURCES names
    live sources (nothing is sent to it otherwise, and compose runs no poll worker)."""
    polling = bool(current_app.config.get("SOURCES_FILE"))
    return [queue for queue in QUEUES if queue != POLL_QUEUE or polling]


def check_consumers() -> str:
    """Whether every pipeline queue has a consumer, from the registry's list of workers."""
    cache = current_app.extensions["rome_registry"]
    known = cache.get()
    if known.workers is None or known.as_of is None:
        return _unavailable("workers", f"cannot list the workers: {known.error or 'no answer yet'}")
    age = time.time() - known.as_of
    if age > cache.max_age:
        return _unavailable("workers", f"the list of workers is {age:.0f} s old: {known.error}")
    # On RabbitMQ a worker consumes the quorum queue `<name>.quorum` (workers/queues.py).
    consumed = {queue.removesuffix(QUORUM_SUFFIX) for worker in known.workers
                for queue in worker["queues"]}
    missing = [queue for queue in required_queues() if queue not in consumed]
    if missing:
        idle = [worker["name"] for worker in known.workers if not worker["queues"]]
        return _unavailable("workers", f"no worker consumes {', '.join(missing)}"
                            + (f"; consuming nothing: {', '.join(idle)}" if idle else ""))
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


@bp.get("/readyz")
def readyz():
    """Answer 200 when this process can serve results (database and broker answer), whether
    or not the workers have started: what compose's healthcheck and start-up waits ask."""
    checks = {"database": check_database(),
              "broker": current_app.extensions["rome_broker_check"].get()}
    ready = all(value == "ok" for value in checks.values())
    return jsonify(status="ok" if ready else "error", **checks), 200 if ready else 503


@bp.get("/healthz")
def healthz():
    """Answer 200 when the database, broker and workers all work, else 503 naming which did not."""
    checks = {"database": check_database(),
              "broker": current_app.extensions["rome_broker_check"].get(),
              "workers": current_app.extensions["rome_workers_check"].get()}
    healthy = all(value == "ok" for value in checks.values())
    return jsonify(status="ok" if healthy else "error", **checks), 200 if healthy else 503
