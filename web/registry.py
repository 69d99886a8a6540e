"""List the live Celery workers, as the original's registry sidecar did."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request
from kombu.exceptions import OperationalError as BrokerError

from web.errors import error_json

bp = Blueprint("registry", __name__)
logger = logging.getLogger("rome.web")


def inspect_workers(celery_app, timeout: float = 1.0) -> list[dict]:
    """Ask every live worker for its queues, tasks and pool, sorted by hostname."""
    inspect = celery_app.control.inspect(timeout=timeout)
    # Each call returns None when no worker answered within the timeout.
    queues = inspect.active_queues() or {}
    registered = inspect.registered() or {}
    stats = inspect.stats() or {}
    workers = []
    for hostname in sorted(queues.keys() | registered.keys() | stats.keys()):
        stat = stats.get(hostname) or {}
        pool = stat.get("pool") or {}
        processes = pool.get("max-concurrency")
        if processes is None and isinstance(pool.get("processes"), list):
            processes = len(pool["processes"])
        workers.append(
            {
                "name": hostname,
                "queues": sorted(q["name"] for q in queues.get(hostname) or [] if "name" in q),
                "tasks": sorted(registered.get(hostname) or []),
                "pid": stat.get("pid"),
                "processes": processes,
            }
        )
    return workers


def _live_workers() -> list[dict]:
    registry = current_app.config.get("REGISTRY")
    if callable(registry):
        return registry()
    # Imported here: importing workers loads settings and creates the broker folders.
    from workers import app as celery_app

    return inspect_workers(celery_app, timeout=current_app.config.get("REGISTRY_TIMEOUT", 1.0))


def _serves(worker: dict, service: str) -> bool:
    node = worker["name"].partition("@")[0]
    return service in worker["queues"] or node == service or worker["name"] == service


@bp.get("/registry")
def registry():
    """List live workers, or with ?service=NAME only those serving that queue or node."""
    service = request.args.get("service")
    if service is not None and not service.strip():
        return error_json(400, "service must not be empty")
    try:
        workers = _live_workers()
    except (BrokerError, OSError) as exc:
        logger.error("registry: broker unreachable: %s", exc)
        return error_json(503, f"cannot reach the broker: {exc}")
    if service is not None:
        workers = [w for w in workers if _serves(w, service)]
        if not workers:
            return error_json(404, f"no live worker serves {service!r}")
    return jsonify(services=workers)
