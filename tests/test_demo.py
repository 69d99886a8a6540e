"""`rome demo` on the embedded default: the page changes, Flower sees the workers, all stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from support import session_members, wait_for

pytestmark = pytest.mark.slow

WORKERS = {"ap", "mc", "sos", "notekeeper", "caesar"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def total_votes(web: str) -> int:
    rows = requests.get(f"{web}/race", headers={"Accept": "application/json"}, timeout=5).json()
    return sum(row["voteCount"] for row in rows)


def test_demo_runs_the_pipeline_and_stops_without_orphans(tmp_path):
    web_port, flower_port = free_port(), free_port()
    env = {
        **os.environ,
        "ROME_DATA_DIR": str(tmp_path / "data"),
        "ROME_SOURCE_INTERVAL": "0.3",
        "ROME_UPDATE_CHANCE": "1",
        "ROME_FLOWER_AUTH": "admin:test-password",
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("ROME_DATABASE_URL", "ROME_BROKER_URL"):
        env.pop(name, None)
    log = open(tmp_path / "demo.log", "wb")
    demo = subprocess.Popen(
        [sys.executable, "-m", "rome.cli", "demo",
         "--web-port", str(web_port), "--flower-port", str(flower_port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    web, flower = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{flower_port}"
    children: set[int] = set()
    try:
        def page_has_votes():
            try:
                return total_votes(web)
            except requests.RequestException:
                return 0

        first = wait_for(page_has_votes, 90, interval=0.5, what="votes on /race")
        wait_for(lambda: page_has_votes() > first, 30, interval=0.5, what="/race to change")
        assert "<html" in requests.get(f"{web}/race", timeout=5).text.lower()

        def flower_workers():
            response = requests.get(f"{flower}/api/workers", params={"status": "true"},
                                    auth=("admin", "test-password"), timeout=5)
            online = {name.split("@")[0] for name, up in response.json().items() if up}
            return online if online >= WORKERS else None

        wait_for(flower_workers, 60, interval=1, what="Flower to list every worker")
        assert requests.get(f"{flower}/api/workers", timeout=5).status_code == 401

        # Every process the demo started lives in a session led by one of its children.
        children = {
            int(line.split("pid=")[1])
            for line in (tmp_path / "demo.log").read_text().splitlines()
            if "| started " in line and "pid=" in line
        }
        assert len(children) == len(WORKERS) + 3  # workers, beat, web, flower
        assert len(session_members(children)) > len(children)  # pool children and the like
    finally:
        demo.send_signal(signal.SIGTERM)
        code = demo.wait(60)
        log.close()
    assert code == 0, (tmp_path / "demo.log").read_text()[-3000:]
    deadline = time.monotonic() + 5
    while session_members(children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert session_members(children) == set()
    output = (tmp_path / "demo.log").read_text()
    assert "all services stopped" in output
    assert "killing it" not in output  # every service stopped on SIGTERM alone
