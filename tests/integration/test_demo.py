"""`rome demo`: what it starts and what it tells the user, then a real run on the embedded default
(the page changes, Flower and /registry see the workers, the banner comes back on demand, all stop).
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest
import requests

from rome.ops.demo import (
    QUIET_SUPERUSER_WARNING,
    banner,
    demo_log_level,
    exposure_warning,
    plan,
    superuser_warning,
)
from rome.ops.flower_login import FlowerLogin
from rome.settings import load_settings
from tests.helpers.support import session_members, wait_for

WORKERS = {"ap", "mc", "sos", "notekeeper", "caesar", "poll", "publish"}
# Lines Celery, beat and gunicorn write per task or request, at info.
PER_TASK = ("] received", "] succeeded in", "Sending due task", "event=recorded", '"GET /')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def planned(tmp_path, **options) -> dict[str, list[str]]:
    settings = load_settings({"ROME_DATA_DIR": str(tmp_path)})
    options = {"web_port": 8083, "flower_port": 5555, "single_worker": False, **options}
    return {service.name: service.argv for service in plan(settings, **options)}


def after(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


# What it starts -------------------------------------------------------------


def test_by_default_every_process_logs_only_warnings_and_no_banner(tmp_path):
    services = planned(tmp_path)
    for name in (*WORKERS, "beat"):
        assert "--quiet" in services[name] and after(services[name], "-l") == "warning", name
    assert after(services["web"], "--log-level") == "warning"
    assert after(services["web"], "--access-logfile") == "/dev/null"
    assert "--logging=warning" in services["flower"]


def test_verbose_logs_every_task_and_request(tmp_path):
    services = planned(tmp_path, log_level="info")
    for name in (*WORKERS, "beat"):
        assert "--quiet" not in services[name] and after(services[name], "-l") == "info"
    assert after(services["web"], "--access-logfile") == "-"
    assert "--logging=info" in services["flower"]


@pytest.mark.parametrize(
    ("configured", "verbose", "level"),
    [(None, False, "warning"), (None, True, "info"), ("error", False, "error"),
     ("info", False, "info"), ("warning", True, "info"), ("debug", True, "debug")],
)
def test_rome_log_level_sets_the_level_and_verbose_raises_it(configured, verbose, level):
    assert demo_log_level(configured, verbose) == level


def test_the_host_reaches_web_and_flower_ipv6_in_brackets(tmp_path):
    services = planned(tmp_path, host="::1", web_port=8100, flower_port=5600)
    assert after(services["web"], "-b") == "[::1]:8100"
    assert "--address=::1" in services["flower"] and "--port=5600" in services["flower"]


# What it says ---------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts_need_no_warning(host):
    assert exposure_warning(host, admin_token=True) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "rome.example"])
def test_other_hosts_get_a_warning_about_the_admin_token(host):
    with_token = exposure_warning(host, admin_token=True)
    assert with_token.startswith(f"warning: web and Flower listen on {host}")
    assert "ROME_ADMIN_TOKEN" in with_token and "unencrypted" in with_token
    assert "Wipeout stays disabled" in exposure_warning(host, admin_token=False)
    assert "Flower's /metrics" in with_token and "without its login" in with_token


def test_the_banner_says_where_everything_is_and_the_login():
    login = FlowerLogin("admin", "pw-123", "/srv/data/flower-login")
    lines = banner(host="0.0.0.0", web_port=8083, flower_port=5555, login=login,
                   data_dir="/srv/data", log_level="warning", missing=[],
                   alerts=["warning: x", "warning: y"], embedded_broker=True)
    text = "\n".join(lines)
    assert len(lines) <= 12  # short enough to find, with every note it can carry
    assert "  results   http://127.0.0.1:8083/race" in text  # a wildcard is not browsable
    assert "  workers   http://127.0.0.1:8083/registry\n" in text
    assert "  static    http://127.0.0.1:8083/live/races/1.html" in text
    assert ("  Flower    http://127.0.0.1:5555   user admin   password pw-123"
            " (kept in /srv/data/flower-login)") in text
    assert "`rome demo --verbose` shows every task" in text
    assert "  warning: x\n  warning: y\n" in text
    assert "its Broker tab answers 404 here" in text  # Flower cannot list the embedded broker
    assert "Press Enter (or send SIGUSR1) to show this again" in text


def test_the_banner_never_shows_a_chosen_password_and_names_late_workers():
    login = FlowerLogin("ops", "chosen-secret", "ROME_FLOWER_AUTH")
    text = "\n".join(banner(host="127.0.0.1", web_port=1, flower_port=2, login=login,
                            data_dir="d", log_level="info", missing=["caesar"], alerts=[],
                            embedded_broker=False))
    assert "chosen-secret" not in text and "password as set in ROME_FLOWER_AUTH" in text
    assert "(still starting: caesar)" in text
    assert "every task and request" in text
    assert "Broker tab" not in text and "warning" not in text


# Superuser privileges: said once, in the banner, not by every worker -------


def test_superuser_privileges_are_named_with_what_to_do(monkeypatch):
    for name in ("getuid", "geteuid"):
        monkeypatch.setattr(os, name, lambda: 0)
    said = superuser_warning()
    assert said.startswith("warning: the workers run with superuser privileges")
    assert "as an unprivileged user" in said and "C_FORCE_ROOT" in said


def test_an_ordinary_user_gets_no_such_warning(monkeypatch):
    # gid 0's group is root, never sudo or wheel: only the uid makes a superuser here.
    for name, value in (("getuid", 12345), ("geteuid", 12345), ("getgid", 0), ("getegid", 0)):
        monkeypatch.setattr(os, name, lambda value=value: value)
    assert superuser_warning() is None


def test_the_workers_filter_hides_celerys_superuser_warning_and_nothing_else():
    # What a worker's start runs, as root, in a child given the demo's filter.
    code = (
        "import os, warnings; os.getuid = os.geteuid = lambda: 0;"
        "from celery.platforms import check_privileges; check_privileges({'json'});"
        "warnings.warn('another warning', UserWarning)"
    )
    env = {**os.environ}
    env.pop("PYTHONWARNINGS", None)
    shown = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, check=True).stderr
    assert "SecurityWarning: You're running the worker with superuser privileges" in shown
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**env, "PYTHONWARNINGS": QUIET_SUPERUSER_WARNING},
                           check=True).stderr
    assert "SecurityWarning" not in quiet and "another warning" in quiet


# A real run -----------------------------------------------------------------


def total_votes(web: str) -> int:
    rows = requests.get(f"{web}/race", headers={"Accept": "application/json"}, timeout=5).json()
    return sum(row["voteCount"] for row in rows)


@pytest.mark.slow
def test_demo_runs_the_pipeline_says_where_and_stops_without_orphans(tmp_path):
    web_port, flower_port = free_port(), free_port()
    data = tmp_path / "data"
    env = {**os.environ, "ROME_DATA_DIR": str(data), "ROME_SOURCE_INTERVAL": "0.3",
           "ROME_UPDATE_CHANCE": "1", "PYTHONUNBUFFERED": "1"}
    for name in ("ROME_DATABASE_URL", "ROME_BROKER_URL", "ROME_FLOWER_AUTH", "ROME_LOG_LEVEL"):
        env.pop(name, None)
    log_path = tmp_path / "demo.log"
    log = open(log_path, "wb")
    # 127.0.0.2: --host reaches both servers, and nothing listens on 127.0.0.1.
    demo = subprocess.Popen(
        [sys.executable, "-m", "rome", "demo", "--host", "127.0.0.2",
         "--web-port", str(web_port), "--flower-port", str(flower_port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.PIPE,
        start_new_session=True,
    )
    web, flower = f"http://127.0.0.2:{web_port}", f"http://127.0.0.2:{flower_port}"
    children: set[int] = set()

    def banners() -> int:
        return log_path.read_text().count("| Rome is up.")

    try:
        wait_for(banners, 120, interval=0.5, what="the banner")
        # The login is kept in the data folder, for its owner only, and the banner shows it.
        login = data / "flower-login"
        assert stat.S_IMODE(login.stat().st_mode) == 0o600
        user, _, password = login.read_text().strip().partition(":")
        assert f"user {user}   password {password}" in log_path.read_text()
        auth = (user, password)

        # Once the banner is out, every address in it answers: Flower's plain
        # /api/workers lists the workers without ?refresh=1.
        listed = requests.get(f"{flower}/api/workers", auth=auth, timeout=5).json()
        assert {name.split("@")[0] for name in listed} == WORKERS
        assert requests.get(f"{flower}/api/workers", timeout=5).status_code == 401
        durations = []
        for _ in range(5):
            started = time.perf_counter()
            registry = requests.get(f"{web}/registry", timeout=5).json()
            durations.append(time.perf_counter() - started)
        assert {w["name"].split("@")[0] for w in registry["services"]} == WORKERS
        assert max(durations) < 0.25 and registry["age_seconds"] < 30, durations
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{web_port}/livez", timeout=5)

        first = wait_for(lambda: total_votes(web), 60, interval=0.5, what="votes on /race")
        wait_for(lambda: total_votes(web) > first, 30, interval=0.5, what="/race to change")

        # The publish worker bakes the races into the data folder; the web serves them at /live/.
        def live_votes() -> int:
            response = requests.get(f"{web}/live/races/1.json", timeout=5)
            return response.json()["total_votes"] if response.status_code == 200 else 0

        published = wait_for(live_votes, 30, interval=0.5, what="race 1 published at /live/")
        wait_for(lambda: live_votes() > published, 30, interval=0.5, what="/live/ to change")
        assert (data / "public" / "races" / "1.json.gz").exists()

        # The banner again, on Enter and on SIGUSR1.
        demo.stdin.write(b"\n")
        demo.stdin.flush()
        wait_for(lambda: banners() == 2, 10, what="the banner after Enter")
        demo.send_signal(signal.SIGUSR1)
        wait_for(lambda: banners() == 3, 10, what="the banner after SIGUSR1")

        # The data folder is in use: reset refuses.
        refused = subprocess.run([sys.executable, "-m", "rome", "reset", "--yes"], env=env,
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1 and "a rome demo is running" in refused.stderr

        # Every process the demo started lives in a session led by one of its children.
        children = {
            int(line.split("pid=")[1])
            for line in log_path.read_text().splitlines()
            if "| started " in line and "pid=" in line
        }
        assert len(children) == len(WORKERS) + 3  # workers, beat, web, flower
        assert len(session_members(children)) > len(children)  # pool children and the like
    finally:
        demo.send_signal(signal.SIGTERM)
        code = demo.wait(60)
        log.close()
    output = log_path.read_text()
    assert code == 0, output[-3000:]
    deadline = time.monotonic() + 5
    while session_members(children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert session_members(children) == set()
    assert "all services stopped" in output
    assert "killing it" not in output  # every service stopped on SIGTERM alone
    # Quiet by default: every task above ran without a line about it.
    assert [line for line in output.splitlines() if any(p in line for p in PER_TASK)] == []
    # As root, the workers' privileges are named in the banner, and by no worker.
    assert "SecurityWarning" not in output
    said = output.count("rome       |   warning: the workers run with superuser privileges")
    assert said == (3 if superuser_warning() else 0), output[-3000:]

    reset = subprocess.run([sys.executable, "-m", "rome", "reset", "--yes"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert reset.returncode == 0, reset.stderr
    assert not data.exists()


def test_the_demo_lets_its_web_answer_to_the_address_it_listens_on():
    from rome.ops.demo import allowed_hosts

    assert allowed_hosts("127.0.0.1") == "localhost,127.0.0.1"
    assert allowed_hosts("127.0.0.2") == "localhost,127.0.0.1,127.0.0.2"
    assert allowed_hosts("0.0.0.0") == "*"
