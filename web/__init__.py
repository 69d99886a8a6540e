"""Serve Rome's results pages, JSON API, metrics, worker registry and health check."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from rome.feeds.sources_file import load_sources
from rome.logs import JsonFormatter
from rome.read.freshness import stale_after
from rome.read.results_cache import ResultsCache
from rome.settings import load_settings
from rome.store import db

# The page loads nothing from elsewhere; the browser is told to refuse it too.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def log_to_stderr(log_format: str) -> None:
    """Send the web's events (wipeouts among them) to stderr, as text or JSON, once per process."""
    logger = logging.getLogger("rome.web")
    if logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def create_app(test_config: Mapping | None = None) -> Flask:
    """Build the Flask app from Rome's settings, then apply test_config over them."""
    app = Flask(__name__)
    # Werkzeug answers /static//x with a redirect to the merged path, as an
    # absolute URL built from the Host header: an open redirect whenever any
    # host is allowed (`rome demo --host 0.0.0.0`). Such a path is a 404.
    app.url_map.merge_slashes = False
    settings = load_settings()
    app.config.from_mapping(
        DATA_DIR=str(settings.data_dir),
        DATABASE_URL=settings.database_url,
        ADMIN_TOKEN=settings.admin_token,
        SECRET_KEY=settings.secret_key,
        BROKER_URL=settings.broker_url,
        BROKER_TRANSPORT_OPTIONS=dict(settings.broker_transport_options),
        SOURCE_INTERVAL=settings.source_interval,
        UPDATE_CHANCE=settings.update_chance,
        # None means ask the real Celery workers; tests set a callable instead.
        REGISTRY=None,
        REGISTRY_TIMEOUT=1.0,
        # /registry answers from a list refreshed this often while it is asked for,
        # and waits for a refresh only when the list is older than REGISTRY_MAX_AGE.
        REGISTRY_REFRESH=5.0,
        REGISTRY_MAX_AGE=30.0,
        # /healthz asks the broker, and reads the workers' queues, at most once per this
        # many seconds per process; every request in between gets that answer.
        HEALTH_CHECK_EVERY=5.0,
        SESSION_COOKIE_NAME="rome_session",
        # The session only carries the form token: never sent with other sites' requests.
        SESSION_COOKIE_SAMESITE="Strict",
        # Answer only to these Host names: a redirect or link built from the Host
        # header then never points elsewhere (None: any host).
        TRUSTED_HOSTS=list(settings.allowed_hosts) if settings.allowed_hosts else None,
        PROXY_HOPS=settings.proxy_hops,
        # ROME_SOURCES: the live sources /api/sources shows; None: the simulated night.
        SOURCES_FILE=str(settings.sources_file) if settings.sources_file else None,
        # The static files readers read (rome/publish/), served at /live/ without nginx.
        PUBLISH_DIR=str(settings.publish_dir),
    )
    if test_config is not None:
        app.config.from_mapping(test_config)
    log_to_stderr(settings.log_format)
    app.config.setdefault(
        "STALE_AFTER", stale_after(app.config["SOURCE_INTERVAL"], app.config["UPDATE_CHANCE"])
    )

    from web import csrf

    # Decided after test_config, so a test's own key or token counts.
    app.config["SECRET_KEY"] = csrf.secret_key(
        app.config.get("SECRET_KEY"), app.config.get("ADMIN_TOKEN"),
        Path(app.config["DATA_DIR"]),
    )
    app.session_interface = csrf.SessionInterface()
    app.jinja_env.globals["csrf_token"] = csrf.csrf_token
    app.jinja_env.globals["csrf_field"] = csrf.FIELD

    # One engine per app: its pool is shared by every request the app serves.
    app.extensions["rome_db"] = db.connect(app.config["DATABASE_URL"])
    app.extensions["rome_results"] = ResultsCache()
    if app.config.get("SOURCES_FILE"):
        # Read at start, so a bad file stops the web as it stops the workers and beat.
        path = app.config["SOURCES_FILE"]
        app.extensions["rome_sources"] = (path, load_sources(path))

    from web import (
        api,
        errors,
        export,
        health,
        live,
        metrics,
        race,
        registry,
        states,
        wipeout,
    )

    app.extensions["rome_metrics"] = metrics.metrics_registry(
        app.extensions["rome_db"], app.config["STALE_AFTER"], Path(app.config["PUBLISH_DIR"])
    )
    # One per process, shared by its threads: see web/wipeout.py for what the limit means.
    app.extensions["rome_wipeout_attempts"] = wipeout.make_attempt_limiter(app.config)
    errors.register(app)
    registry.install(app)
    health.install(app)
    app.register_blueprint(race.bp)
    app.register_blueprint(wipeout.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(states.bp)
    app.register_blueprint(export.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(registry.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(live.bp)

    @app.after_request
    def _protect_pages(response):
        if response.mimetype in ("text/html", "image/svg+xml"):
            response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        # Every answer, JSON included: its type is what it says, and a link
        # followed to another site does not tell it which page it came from.
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    if app.config["PROXY_HOPS"]:
        # Behind that many proxies, take the client's address, scheme and host
        # from X-Forwarded-For, -Proto and -Host; otherwise those headers are
        # the client's own words and ignored.
        hops = app.config["PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    return app
