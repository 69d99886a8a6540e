"""Let clients and caches keep live responses only as long as the data behind them is unchanged."""

from __future__ import annotations

from flask import Response, request


def revalidate(response: Response) -> Response:
    """Tag a successful GET with an ETag, answer 304 when it matches, and demand revalidation."""
    if request.method in ("GET", "HEAD") and response.status_code == 200:
        if not response.direct_passthrough and not response.get_etag()[0]:
            # Hashing the body is cheap next to the queries that made it, and
            # always right: the tag changes exactly when what the client sees does.
            response.add_etag()
        response.make_conditional(request)
    # Results change every few seconds: a cache may keep a copy, but must ask
    # before each use; the ETag makes asking cost a 304.
    response.cache_control.no_cache = True
    if response.mimetype == "text/html":
        # Pages carry this visitor's form token: for their browser only.
        response.cache_control.private = True
    return response
