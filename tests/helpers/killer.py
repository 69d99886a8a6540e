"""Rome's Celery app plus one task whose process dies, to stand in for a poison message.

A worker started with `celery -A tests.helpers.killer worker` (the repository on PYTHONPATH) is a
real Rome worker, with tasks that kill its own pool process the way a
message can (a crash, os._exit, or the OOM killer, SIGKILL), or the worker's
main process.
"""

from __future__ import annotations

import os
import signal

from workers import app
from workers.factory import ROUTES
from workers.tasks import PipelineTask

__all__ = ["app", "always_fails", "kill_main_process", "kill_own_process"]


@app.task(name="rome.test.kill_own_process", bind=True, base=PipelineTask)
def kill_own_process(self, how: str) -> None:
    """Die without a word: exit with status 3, or SIGKILL."""
    if how == "exit":
        os._exit(3)
    os.kill(os.getpid(), signal.SIGKILL)


@app.task(name="rome.test.kill_main_process", bind=True, base=PipelineTask)
def kill_main_process(self) -> None:
    """Kill the worker's main process (SIGKILL), as a message that crashes its consumer would."""
    os.kill(os.getppid(), signal.SIGKILL)
    os._exit(0)  # the pool child goes too: nothing is left to ack or requeue the message


# Routed like Rome's own tasks: Celery 5.7 can retry a task by countdown on a
# quorum queue only when the router names its queue.
ROUTES["rome.test.always_fails"] = "caesar"


@app.task(name="rome.test.always_fails", bind=True, base=PipelineTask)
def always_fails(self, source: str) -> None:
    """Fail on every try, as a bug would: retried by countdown, then given up on."""
    raise RuntimeError(f"a bug that {source}'s message hits every time")
