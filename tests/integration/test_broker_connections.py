"""How many connections `rome demo` holds on a shared RabbitMQ, and that asking it more does
not open more (issue 23, point 11: a shared 3.10 node stops answering handshakes on every
vhost once its sockets run out; docs/reliability.md)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from tests.helpers.support import CountingProxy, reset_queues, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.services]

# Measured: 34 to 37 once every process is up (docs/reliability.md).
MOST_CONNECTIONS = 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_demo_holds_few_broker_connections_however_often_healthz_is_asked(
        tmp_path, pg_url, amqp_url):
    reset_queues(amqp_url)
    parts = urlsplit(amqp_url)
    proxy = CountingProxy(parts.hostname, parts.port or 5672)
    through_proxy = urlunsplit(parts._replace(
        netloc=f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"))
    web_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROME_", "FLOWER_"))}
    env.update(ROME_DATA_DIR=str(tmp_path / "data"), ROME_DATABASE_URL=pg_url,
               ROME_BROKER_URL=through_proxy, ROME_ENV="development", PYTHONUNBUFFERED="1")
    upgraded = subprocess.run([sys.executable, "-m", "rome", "db", "upgrade"], env=env,
                              capture_output=True, text=True, timeout=120)
    assert upgraded.returncode == 0, upgraded.stderr
    log_path = tmp_path / "demo.log"
    with open(log_path, "wb") as log:
        demo = subprocess.Popen(
            [sys.executable, "-m", "rome", "demo", "--web-port", str(web_port),
             "--flower-port", str(free_port())],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    web = f"http://127.0.0.1:{web_port}"
    try:
        wait_for(lambda: "| Rome is up." in log_path.read_text(), 180, interval=0.5,
                 what="the banner")
        wait_for(lambda: requests.get(f"{web}/healthz", timeout=10).status_code == 200, 60,
                 interval=1, what="/healthz to say 200")
        time.sleep(5)  # Flower's first refresh, the registry's first questions
        before, held_before = proxy.connections, proxy.open
        answers: list[int] = []

        def ask():
            with requests.Session() as session:
                for _ in range(20):
                    answers.append(session.get(f"{web}/healthz", timeout=30).status_code)

        askers = [threading.Thread(target=ask) for _ in range(20)]
        began = time.monotonic()
        for thread in askers:
            thread.start()
        for thread in askers:
            thread.join()
        took = time.monotonic() - began
        time.sleep(max(0.0, 10 - took))
        made, held_after = proxy.connections - before, proxy.open
        print(f"demo: {held_before} connections held before, {held_after} after; "
              f"{made} made in {max(took, 10):.1f} s while /healthz was asked "
              f"{len(answers)} times")
        assert answers.count(200) == 400, set(answers)
        assert held_before <= MOST_CONNECTIONS and held_after <= MOST_CONNECTIONS
        # /healthz asks the broker at most once per 5 s per gunicorn worker (two): 400
        # requests opened 400 connections before issue 23.
        assert made <= 12, made
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(60)
        proxy.close()
