"""The published folder (ROME_PUBLISH_DIR) at /live/, for the embedded demo without nginx.

In compose nginx serves the same folder (docker/nginx.conf), faster; here Flask sends
the files with their ETag and answers If-None-Match with a 304, as nginx does.
"""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, send_from_directory, url_for

from web.errors import error_json

bp = Blueprint("live", __name__)
DATA_MAX_AGE = 5  # seconds, as nginx's Cache-Control on the JSON and the pages
ASSET_MAX_AGE = 3600


@bp.get("/live/", strict_slashes=False)
def live_index():
    return redirect(url_for("live.live_file", name="index.json"))


@bp.get("/live/<path:name>")
def live_file(name: str):
    """One published file; 404 for one not published, and for dot files (the lag record)."""
    if any(part.startswith(".") for part in name.split("/")):
        return error_json(404, "not published")
    max_age = ASSET_MAX_AGE if name.startswith("assets/") else DATA_MAX_AGE
    response = send_from_directory(current_app.config["PUBLISH_DIR"], name, max_age=max_age,
                                   conditional=True, etag=True)
    response.cache_control.public = True
    return response
