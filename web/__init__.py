"""Serve Rome's results page, JSON API, worker registry and health check."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Flask

from rome import db
from rome.settings import load_settings


def create_app(test_config: Mapping | None = None) -> Flask:
    """Build the Flask app from Rome's settings, then apply test_config over them."""
    app = Flask(__name__)
    settings = load_settings()
    app.config.from_mapping(
        DATABASE_URL=settings.database_url,
        ADMIN_TOKEN=settings.admin_token,
        BROKER_URL=settings.broker_url,
        BROKER_TRANSPORT_OPTIONS=dict(settings.broker_transport_options),
        # None means ask the real Celery workers; tests set a callable instead.
        REGISTRY=None,
        REGISTRY_TIMEOUT=1.0,
    )
    if test_config is not None:
        app.config.from_mapping(test_config)

    # One engine per app: its pool is shared by every request the app serves.
    app.extensions["rome_db"] = db.connect(app.config["DATABASE_URL"])

    from web import api, errors, health, race, registry

    errors.register(app)
    app.register_blueprint(race.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(registry.bp)
    app.register_blueprint(health.bp)
    return app
