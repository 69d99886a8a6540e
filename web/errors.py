"""Answer every error as JSON for API callers and as a styled page with a way back for people."""

from __future__ import annotations

import logging
from typing import TypedDict

from flask import Flask, Response, jsonify, render_template, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import (
    HTTPException,
    MethodNotAllowed,
    NotFound,
    SecurityError,
    ServiceUnavailable,
)

logger = logging.getLogger("rome.web")


class ErrorJson(TypedDict):
    """What went wrong, in words that help: every JSON failure answers this."""

    error: str


def wants_json() -> bool:
    """Tell whether the current request should get JSON rather than HTML."""
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def error_json(status: int, message: str) -> tuple[Response, int]:
    """Build the {"error": message} response every JSON failure uses."""
    return jsonify(ErrorJson(error=message)), status


def describe(exc: HTTPException) -> str:
    """Say what went wrong in words that help: Werkzeug's stock texts name no path or method."""
    if exc.description != type(exc).description:
        return exc.description  # a view's own message, such as "no race with id 99"
    path = request.path
    if isinstance(exc, NotFound):
        if path.startswith("/api/"):
            return f"no API route {path}: the routes are listed in /api/openapi.json"
        return f"there is no page at {path}"
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        allowed = ", ".join(m for m in exc.valid_methods if m not in ("HEAD", "OPTIONS"))
        return f"{request.method} is not allowed on {path}; it answers {allowed}"
    return exc.description or exc.name


def _sentence(message: str) -> str:
    message = message[:1].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else f"{message}."


def _http_error(exc: HTTPException):
    status = exc.code or 500
    message = describe(exc)
    if isinstance(exc, SecurityError):
        # An untrusted Host: no page may be built for it (its links would name it).
        return Response(f"{status} {exc.name}: this server does not answer to that host name\n",
                        status=status, mimetype="text/plain")
    if wants_json():
        response, _ = error_json(status, message)
    else:
        response = Response(
            render_template("error.html", status=status, title=exc.name,
                            message=_sentence(message), retry=status >= 500),
            mimetype="text/html",
        )
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
