"""Rome's one Celery app: queues, reliability settings and the beat schedule.

Run it with:

    celery -A workers worker                                 # every queue
    celery -A workers worker -Q notekeeper,caesar            # any queues
    celery -A workers worker -Q elections_ap -n ap@%h        # one source
    celery -A workers beat                                   # exactly one, normally
    celery -A workers flower --port=5555

Importing this package reads nothing and makes nothing. `workers.app` (what
`celery -A workers` looks for) and `workers.settings` are built together on
first use, once a process, by workers.factory.create_app from the validated
settings of the environment.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from celery import Celery

    from rome.settings import Settings

    app: Celery
    settings: Settings

_building = threading.Lock()


def __getattr__(name: str):
    # PEP 562: called only for names not yet in the module, so once built,
    # app and settings are plain module attributes.
    if name not in ("app", "settings"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _building:
        if "app" not in globals():
            from rome.settings import load_settings
            from workers.factory import create_app

            built = load_settings()
            globals().update(settings=built, app=create_app(built))
    return globals()[name]
