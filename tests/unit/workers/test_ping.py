"""`python -m workers.ping`, the compose workers' healthcheck, against a real worker.

The check runs every 30 s in every worker container. `celery inspect ping` exits with its
two connections still open, and RabbitMQ, seeing them drop while it tears their channels
down, now and then logs a supervisor shutdown_error at error level. So besides its answer,
the test counts, inside the check's own process, the connections it opened and those that
ended with RabbitMQ's close-ok: a dropped one is never acknowledged.
"""

from __future__ import annotations

import re
import socket
import sys

import pytest

from tests.helpers.support import CELERY, wait_for

pytestmark = pytest.mark.slow

# Run workers.ping as `python -m` does, counting amqp connections opened and closed.
COUNTED = """
import atexit, runpy, sys
import amqp

opened, closed = [], []
connect, close_ok = amqp.Connection.connect, amqp.Connection._on_close_ok

def counted_connect(self, *args, **kwargs):
    opened.append(self)
    return connect(self, *args, **kwargs)

def counted_close_ok(self, *args, **kwargs):
    closed.append(self)
    return close_ok(self, *args, **kwargs)

amqp.Connection.connect, amqp.Connection._on_close_ok = counted_connect, counted_close_ok
atexit.register(lambda: print(f"opened {len(opened)} closed {len(closed)}", file=sys.stderr))
runpy.run_module("workers.ping", run_name="__main__", alter_sys=True)
"""


def ping(processes, node: str, timeout: float):
    """Run the check; return (exit code, stdout, stderr, connections opened, closed)."""
    done = processes.run([sys.executable, "-c", COUNTED, node, "-t", str(timeout)],
                         timeout=timeout + 60)
    opened, closed = map(int, re.search(r"opened (\d+) closed (\d+)", done.stderr).groups())
    return done.returncode, done.stdout, done.stderr, opened, closed


def test_ping_answers_only_for_its_node_and_closes_every_connection(rome_on_rabbitmq, unique):
    processes, _ = rome_on_rabbitmq
    node = f"ping-{unique}@{socket.gethostname()}"
    processes.start("worker", [*CELERY, "worker", "-Q", "elections_ap", "-n", node,
                               "-c", "1", "-l", "info"])

    def answered():
        result = ping(processes, node, 2)
        return result if result[0] == 0 else None

    code, out, err, opened, closed = wait_for(answered, 90, interval=1,
                                              what=f"{node} to answer the ping")
    assert out.strip() == f"{node}: pong", err
    assert opened >= 1 and closed == opened, err

    # A node that does not exist: no answer, exit 1, and still every connection closed.
    code, out, err, opened, closed = ping(processes, f"nobody-{unique}@nowhere", 1)
    assert code == 1 and "no answer within 1 s" in err, (out, err)
    assert opened >= 1 and closed == opened, err
