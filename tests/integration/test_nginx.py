"""docker/nginx.conf on this machine's nginx, serving a folder Rome published: the headers
compose's nginx gives (gzip from the .gz beside each file, ETag and 304, Cache-Control)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess

import pytest

from rome.bench.static import nginx_config
from rome.publish.publisher import Publisher
from rome.store import db
from tests.helpers.builders import national_snapshot
from tests.helpers.services import missing_service
from tests.helpers.support import get_raw, wait_for
from tests.helpers.webapp import record


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(tmp_path):
    if shutil.which("nginx") is None:
        missing_service("nginx", FileNotFoundError("nginx (apt-get install nginx-light)"))
    url = f"sqlite:///{tmp_path / 'rome.sqlite3'}"
    db.prepare(url).engine.dispose()
    record(url, national_snapshot(20))
    root = tmp_path / "public"
    database = db.connect(url)
    Publisher(root).publish_from(database)
    database.engine.dispose()
    os.chmod(tmp_path, 0o755)
    port = free_port()
    nginx = subprocess.Popen(["nginx", "-c", str(nginx_config(tmp_path, root, port)),
                              "-g", "daemon off;"], start_new_session=True)

    def get(path: str, headers: dict | None = None):
        return get_raw(port, path, headers)

    def answers() -> bool:
        try:
            return get("/index.json")[0] == 200
        except OSError:
            return nginx.poll() is not None  # exited: the assertion below says so

    try:
        wait_for(answers, 10, what="nginx to serve")
        assert nginx.poll() is None, "nginx exited"
        yield root, get, tmp_path / "nginx-error.log"
    finally:
        # Its whole group (master and workers), even when the start failed: an nginx left
        # behind holds its port and outlives the run.
        try:
            os.killpg(nginx.pid, signal.SIGQUIT)
            nginx.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(nginx.pid, signal.SIGKILL)
            nginx.wait(10)
        except ProcessLookupError:
            pass


def test_nginx_serves_the_published_race_gzipped_with_its_etag_and_cache_control(served):
    root, get, error_log = served
    status, headers, body = get("/races/1.json", {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == (root / "races/1.json").read_bytes()
    assert headers["Content-Type"].startswith("application/json")
    assert headers["Cache-Control"] == "public, max-age=5"
    status, again, body = get("/races/1.json", {"Accept-Encoding": "gzip",
                                                "If-None-Match": headers["ETag"]})
    assert (status, body) == (304, b"")
    status, plain, body = get("/races/1.json")
    assert status == 200 and "Content-Encoding" not in plain
    assert json.loads(body)["id"] == 1
    assert get("/assets/race.js")[1]["Cache-Control"] == "public, max-age=3600"
    # sources.json as the race pages poll it: the server's clock in Date on the 304 too
    # (they judge staleness by it).
    status, headers, body = get("/sources.json")
    assert status == 200 and headers["Date"] and json.loads(body)["sources"]
    status, again, _ = get("/sources.json", {"If-None-Match": headers["ETag"]})
    assert status == 304 and again["Date"]
    assert get("/.publish.lock")[0] == 404  # dot files: the lock, temporaries, the lag
    assert get("/")[1]["Location"].endswith("/index.json")
    # A race not published yet is a 404 readers may well ask for: no error logged (compose's
    # test fails on any error line).
    assert get("/races/999999.json")[0] == 404
    assert "[error]" not in error_log.read_text()
