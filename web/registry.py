"""List the live Celery workers, as the original's registry sidecar did, from a background cache."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, Flask, current_app, jsonify, request

import workers
from rome.ops.registry_cache import RegistryCache
from web.errors import error_json

bp = Blueprint("registry", __name__)
logger = logging.getLogger("rome.web")


def inspect_workers(celery_app, timeout: float = 1.0) -> list[dict]:
    """Ask every live worker for its queues, tasks and pool, sorted by hostname."""
    # A broadcast waits out its timeout for replies it cannot know are not coming;
    # the first learns how many workers answer, so the next two stop once all have.
    queues = celery_app.control.inspect(timeout=timeout).active_queues() or {}
    inspect = celery_app.control.inspect(timeout=timeout, limit=len(queues) or None)
    # Each call returns None when no worker answered within the timeout.
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


def install(app: Flask) -> None:
    """Give app its worker cache: Celery's inspect, or the REGISTRY callable tests set."""
    fetch = app.config.get("REGISTRY")
    timeout = app.config["REGISTRY_TIMEOUT"]
    real = not callable(fetch)
    if real:
        def fetch():
            # workers.app is built on first use, from the environment's settings.
            return inspect_workers(workers.app, timeout=timeout)

    cache = RegistryCache(fetch, every=app.config["REGISTRY_REFRESH"],
                          max_age=app.config["REGISTRY_MAX_AGE"])
    app.extensions["rome_registry"] = cache
    if real:
        cache.start()  # so the first request finds the list already known


def _serves(worker: dict, service: str) -> bool:
    node = worker["name"].partition("@")[0]
    return service in worker["queues"] or node == service or worker["name"] == service


@bp.get("/registry")
def registry():
    """List live workers, or with ?service=NAME only those serving that queue or node."""
    service = request.args.get("service")
    if service is not None and not service.strip():
        return error_json(400, "service must not be empty")
    known = current_app.extensions["rome_registry"].get()
    if known.workers is None:
        return error_json(503, f"cannot list the workers: {known.error or 'no answer yet'}")
    workers = known.workers
    if service is not None:
        workers = [w for w in workers if _serves(w, service)]
        if not workers:
            return error_json(404, f"no live worker serves {service!r}")
    as_of = datetime.fromtimestamp(known.as_of, UTC)
    body = {
        "services": workers,
        # How fresh the list is: when the refresh that found it began.
        "as_of": as_of.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "age_seconds": round(max(0.0, datetime.now(UTC).timestamp() - known.as_of), 1),
    }
    if known.error:
        body["refresh_error"] = known.error
    return jsonify(body)
