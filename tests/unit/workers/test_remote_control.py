"""A Rome worker obeys inspect commands and refuses the control commands that change it."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from celery.worker import control

from workers.remote_control import OBEYED, restrict

# Every control command of Celery 5 that changes the worker or its tasks.
CHANGING = {"shutdown", "cancel_consumer", "add_consumer", "pool_restart", "pool_grow",
            "pool_shrink", "autoscale", "revoke", "terminate", "rate_limit", "time_limit"}


def test_control_commands_that_change_the_worker_are_refused_and_logged(caplog):
    data, meta = dict(control.Panel.data), dict(control.Panel.meta)
    refused = restrict(data, meta)
    assert CHANGING <= set(refused)
    assert not OBEYED & set(refused)
    # Inspect commands (aliases too) are Celery's own, untouched: Flower and /registry use them.
    for name in ("ping", "stats", "active_queues", "registered", "active", "dump_active",
                 "dump_revoked", "hello", *OBEYED):
        assert data[name] is control.Panel.data[name], name
    with caplog.at_level(logging.WARNING, logger="rome.workers"):
        answer = data["shutdown"](SimpleNamespace(hostname="caesar@host"))
    assert "does not obey" in answer["error"]
    assert "event=control_command_refused" in caplog.text and "command=shutdown" in caplog.text
    # Only the copies changed: this process's registry is Celery's own.
    assert control.Panel.data["shutdown"] is not data["shutdown"]
