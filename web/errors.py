"""Turn errors into JSON for API callers and keep database outages out of 500s."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, ServiceUnavailable

logger = logging.getLogger("rome.web")


def wants_json() -> bool:
    """Tell whether the current request should get JSON rather than HTML."""
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def error_json(status: int, message: str) -> tuple[Response, int]:
    """Build the {"error": message} response every JSON failure uses."""
    return jsonify(error=message), status


def _http_error(exc: HTTPException):
    if not wants_json():
        return exc
    response, status = error_json(exc.code or 500, exc.description or exc.name)
    # Keep headers such as Allow on a 405, so clients still learn what is allowed.
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response, status


def _database_down(exc: OperationalError):
    # An unreachable database is an outage, not a bug: say so with a 503.
    logger.error("database unavailable: %s", exc.orig or exc)
    return _http_error(ServiceUnavailable("the results database is unavailable"))


def register(app: Flask) -> None:
    """Install the error handlers on app."""
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OperationalError, _database_down)
