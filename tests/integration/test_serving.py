"""The web server as the demo and compose run it: slow clients cannot hold it; no token logged."""

from __future__ import annotations

import os
import select
import socket
import statistics
import sys
import threading
import time

import pytest
import yaml

from rome.ops.demo import plan
from rome.settings import load_settings
from tests.helpers.paths import ROOT
from tests.helpers.support import Processes, wait_for
from tests.helpers.webapp import seed
from web.serving import READ_SECONDS, _request_complete, redact_query

SLOW_CLIENTS = 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_command(port: int, env: dict) -> list[str]:
    # Verbose: the quiet demo keeps no access log, and the redaction test reads it.
    services = plan(load_settings(env), web_port=port, flower_port=free_port(),
                    single_worker=True, log_level="info")
    return next(s.argv for s in services if s.name == "web")


def compose_command(port: int, env: dict) -> list[str]:
    command = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["nero"][
        "command"]
    assert command[0] == "gunicorn"
    argv = [sys.executable, "-m", "gunicorn", *command[1:]]
    # Loopback only here: the container binds every interface of its own network.
    return [f"127.0.0.1:{port}" if a == "0.0.0.0:8083" else a for a in argv]


@pytest.fixture(params=[demo_command, compose_command], ids=["demo", "compose"])
def web(request, tmp_path):
    """Run the web app under gunicorn as the demo (or compose) does; yield its address."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROME_", "FLOWER_"))}
    url = f"sqlite:///{tmp_path / 'rome.sqlite3'}"
    seed(url)
    env.update(ROME_DATA_DIR=str(tmp_path / "data"), ROME_DATABASE_URL=url,
               ROME_ADMIN_TOKEN="an-admin-token-for-these-tests")
    port = free_port()
    argv = request.param(port, env)
    assert f"127.0.0.1:{port}" in argv
    processes = Processes(env, tmp_path)
    processes.env = env
    processes.start("web", argv)
    address = ("127.0.0.1", port)
    wait_for(lambda: status_of(address, "/livez") == 200, 30, interval=0.2,
             what="gunicorn to answer")
    yield address, processes
    processes.stop()


def fetch(address, path: str, timeout: float = 5.0) -> bytes:
    """GET path over a fresh connection and return the whole raw answer."""
    with socket.create_connection(address, timeout=timeout) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                     .encode())
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def status_of(address, path: str) -> int | None:
    try:
        return int(fetch(address, path, timeout=2).split(b" ", 2)[1])
    except (OSError, IndexError, ValueError):
        return None


@pytest.mark.slow
def test_slow_clients_do_not_hold_the_web(web):
    address, _ = web
    # Each opens a request and sends one more header line every 2 s, never ending it.
    slow = [socket.create_connection(address, timeout=5) for _ in range(SLOW_CLIENTS)]
    for conn in slow:
        conn.sendall(b"GET /api/races HTTP/1.1\r\nHost: localhost\r\n")
    opened = time.monotonic()
    cut_after: dict[int, float] = {}
    stop = threading.Event()

    def trickle():
        sent = opened
        while not stop.wait(0.25):
            line = time.monotonic() - sent >= 2.0
            sent = time.monotonic() if line else sent
            for i, conn in enumerate(slow):
                if i in cut_after:
                    continue
                try:
                    # The server closing the connection makes it readable, at EOF.
                    if select.select([conn], [], [], 0)[0] and not conn.recv(4096):
                        raise ConnectionResetError
                    if line:
                        conn.sendall(b"X-Slow: %d\r\n" % i)
                except OSError:
                    cut_after[i] = time.monotonic() - opened

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    timings = []
    try:
        while time.monotonic() - opened < READ_SECONDS + 4:
            started = time.perf_counter()
            answer = fetch(address, "/api/races")
            timings.append(time.perf_counter() - started)
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
            time.sleep(0.2)
    finally:
        stop.set()
        trickler.join(5)
        for conn in slow:
            conn.close()
    assert len(timings) >= 40
    assert statistics.median(timings) < 0.1, timings
    assert max(timings) < 1.0, timings
    # And the server let go of every slow client soon after READ_SECONDS.
    assert len(cut_after) == SLOW_CLIENTS, f"{len(cut_after)} of {SLOW_CLIENTS} cut"
    assert READ_SECONDS - 0.5 < min(cut_after.values())
    assert max(cut_after.values()) < READ_SECONDS + 2.5


@pytest.mark.slow
def test_the_access_log_keeps_no_token(web):
    address, processes = web
    assert status_of(
        address, "/api/rejected?limit=1&token=hunter2-guess&api_key=k3y&t%6Fken=s%65cret"
    ) == 200
    wait_for(lambda: "/api/rejected" in processes.log("web"), 10, what="the access log line")
    log = processes.log("web")
    assert "limit=1&token=[redacted]&api_key=[redacted]&t%6Fken=[redacted]" in log
    assert "hunter2" not in log and "k3y" not in log and "s%65cret" not in log


def exchange(address, request: bytes, *, then_hang_up: bool = False) -> bytes:
    """Send request over a fresh connection; return all the server answers before it closes."""
    with socket.create_connection(address, timeout=5) as conn:
        conn.sendall(request)
        if then_hang_up:
            conn.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def chunked_wipeout(size: bytes, header: bytes, connection: bytes = b"keep-alive") -> bytes:
    return (b"POST /race/wipeout HTTP/1.1\r\nHost: localhost\r\n" + header + b"\r\n"
            b"Connection: " + connection + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
            + size + b"\r\ntoken=x\r\n0\r\n\r\n")


FORM = b"Content-Type: application/x-www-form-urlencoded"
BEARER = b"Authorization: Bearer a-wrong-token"


def test_a_bad_chunk_size_gets_400_without_a_traceback(web):
    address, processes = web
    # A well-formed chunked form is read as before (refused for its missing CSRF token).
    assert exchange(address, chunked_wipeout(b"7", FORM, b"close")).startswith(b"HTTP/1.1 403")
    for _ in range(3):
        # The form's body is read by the app: a 400 that says why.
        answer = exchange(address, chunked_wipeout(b"zz", FORM))
        assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
        assert b"The request body is malformed." in answer
        # One answer, then the connection closes: what follows is not a request.
        assert answer.count(b"HTTP/1.1 ") == 1, answer
        # The API route answers before reading the body: its answer alone.
        answer = exchange(address, chunked_wipeout(b"zz", BEARER))
        assert answer.startswith(b"HTTP/1.1 401"), answer[:300]
        assert answer.count(b"HTTP/1.1 ") == 1, answer
    # A client that stops sending halfway through a chunk: no traceback either.
    cut_short = chunked_wipeout(b"7", FORM).rsplit(b"=", 1)[0]
    assert exchange(address, cut_short, then_hang_up=True).startswith(b"HTTP/1.1 400")
    assert status_of(address, "/livez") == 200
    wait_for(lambda: processes.log("web").count('"POST /race/wipeout HTTP/1.1" 400') == 4,
             10, what="the access log lines")
    log = processes.log("web")
    assert "Traceback" not in log and "Error handling request" not in log, log
    assert '" 500 ' not in log


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("GET /race?token=abc HTTP/1.1", "GET /race?token=[redacted] HTTP/1.1"),
        ("/x?a=1&admin_token=abc&b=2", "/x?a=1&admin_token=[redacted]&b=2"),
        ("/x?Password=p;session_id=s", "/x?Password=[redacted];session_id=[redacted]"),
        ("/x?limit=5&since=2024", "/x?limit=5&since=2024"),
        ("http://localhost/race?csrf_token=t#top", "http://localhost/race?csrf_token=[redacted]#top"),
        # Names are matched as the app reads them: percent-decoded, + as a space.
        ("GET /race?t%6Fken=abc HTTP/1.1", "GET /race?t%6Fken=[redacted] HTTP/1.1"),
        ("/x?a=1&%74%6F%6B%65%4E=abc&b=2", "/x?a=1&%74%6F%6B%65%4E=[redacted]&b=2"),
        ("/x?pass+word=p&api%5Fkey=k", "/x?pass+word=[redacted]&api%5Fkey=[redacted]"),
        ("/x?t%256Fken=a", "/x?t%256Fken=[redacted]"),
        ("http://localhost/race?%73ecret=s#top", "http://localhost/race?%73ecret=[redacted]#top"),
        ("/x?l%69mit=5&since=2024", "/x?l%69mit=5&since=2024"),
    ],
)
def test_redact_query(text, redacted):
    assert redact_query(text) == redacted


@pytest.mark.parametrize(
    ("buffer", "complete"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", False),
        (b"POST / HTTP/1.1\r\ncontent-length : 5\r\n\r\nabcde", True),
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", True),
        (b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\nab", False),
        (b"POST / HTTP/1.1\r\nX-Content-Length: 5\r\n\r\n", True),
    ],
)
def test_a_request_is_buffered_until_its_head_and_small_body_are_in(buffer, complete):
    assert _request_complete(bytearray(buffer)) is complete
