"""Which of Celery's remote-control commands a Rome worker obeys.

Celery's worker obeys every command sent to its pidbox (the `celery.pidbox` fanout
exchange) by anyone who can publish on the broker: `control.shutdown` stopped the
whole demo, `control.cancel_consumer` stopped ingestion (issue 23). Celery has no
setting that keeps some: `worker_enable_remote_control = False` drops them all, and
Flower, `/registry` and the compose healthcheck (`workers.ping`) need the inspect
commands. The worker dispatches a command through `Panel.data` (the name -> handler
dict `celery.worker.pidbox.Pidbox` hands to kombu's `Node`), so `restrict` replaces
every handler of type "control" but those in OBEYED with one that refuses: the
sender gets `{"error": ...}` in its reply and the worker logs the refusal.
"""

from __future__ import annotations

import logging

from celery.worker.control import Panel, nok

from rome.logs import log

logger = logging.getLogger("rome.workers")

# Control commands that change nothing the pipeline depends on: Flower turns the
# workers' events on (and off), which it needs to show tasks; a heartbeat and an
# election only send events or answers.
OBEYED = frozenset({"enable_events", "disable_events", "heartbeat", "election"})


def _refuse(name: str):
    def refused(state, **arguments):
        log(logger, "control_command_refused", logging.WARNING, command=name,
            worker=getattr(state, "hostname", None))
        return nok(f"{name}: this worker does not obey remote control commands "
                   "that change it (workers/remote_control.py)")
    refused.refused_command = name
    return refused


def restrict(data: dict | None = None, meta: dict | None = None) -> list[str]:
    """Make every control command outside OBEYED refuse, in this process; return their names.

    Aliases are found by handler: Celery registers an alias under the same function.
    """
    data = Panel.data if data is None else data
    meta = Panel.meta if meta is None else meta
    controls = {data[name] for name, info in meta.items()
                if info.type == "control" and name in data}
    refused = sorted(name for name, handler in data.items()
                     if handler in controls and name not in OBEYED)
    for name in refused:
        data[name] = _refuse(name)
    return refused
