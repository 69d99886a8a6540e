"""Run every service of the pipeline as child processes, and stop them all together."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import signal
import sys
import threading
import time
import urllib.request
from urllib.error import URLError

from rome.data_files import BEAT_SCHEDULE
from rome.ops import seam
from rome.ops.flower_login import FlowerLogin, demo_login
from rome.ops.supervisor import Service, Supervisor
from rome.settings import Settings

CELERY = [sys.executable, "-m", "celery", "-A", "workers"]
SERVICE_QUEUES = {
    "ap": "elections_ap",
    "mc": "elections_mc",
    "sos": "elections_sos",
    "notekeeper": "notekeeper",
    "caesar": "caesar",
    "poll": "poll",  # the live sources of ROME_SOURCES
}
# Polls run side by side, so one stalled endpoint never holds the other sources.
POLL_CONCURRENCY = 4
# The publish worker (rome/publish/) in every mode, on a threads pool: an ask waiting out
# ROME_PUBLISH_INTERVAL holds one thread while the others join its publish and return.
PUBLISH = "publish"
PUBLISH_THREADS = 4


# How Celery's SecurityWarning about superuser privileges begins: every worker prints
# it at start, 8 lines each (celery.platforms.check_privileges).
SUPERUSER_WARNING = "You're running the worker with superuser privileges"
# A -W filter for that one warning, and nothing else: its text, its category (a
# UserWarning; naming Celery's own class would import Celery at interpreter start)
# and the module that warns.
QUIET_SUPERUSER_WARNING = f"ignore:{SUPERUSER_WARNING}:UserWarning:celery.platforms"


def superuser_warning() -> str | None:
    """Say what Celery would warn each worker of about its privileges, or None if nothing."""
    if not any(m.startswith(SUPERUSER_WARNING) for m in seam.worker_privilege_warnings()):
        return None
    return ("warning: the workers run with superuser privileges (root, or the sudo or wheel"
            " group), which Celery advises against; run `rome demo` as an unprivileged user."
            " C_FORCE_ROOT would not change that: it only lets such a worker accept pickle,"
            " which Rome never does.")


def demo_log_level(configured: str | None, verbose: bool) -> str:
    """Pick the demo's log level: --verbose means info (or debug if set), else ROME_LOG_LEVEL."""
    if verbose:
        return "debug" if configured == "debug" else "info"
    return configured or "warning"


def worker_nodes(single_worker: bool) -> list[str]:
    """Name the worker nodes plan() starts, as they appear before the @ of their hostnames."""
    return ["rome", PUBLISH] if single_worker else [*SERVICE_QUEUES, PUBLISH]


def plan(
    settings: Settings,
    *,
    web_port: int,
    flower_port: int,
    single_worker: bool,
    host: str = "127.0.0.1",
    log_level: str = "warning",
) -> list[Service]:
    """List the processes of a full pipeline: workers, one beat, web, Flower."""
    # Below info, every process keeps quiet but for warnings and errors: no line per
    # task or request, and no Celery start-up banners (the demo prints its own).
    verbose = log_level in ("debug", "info")
    celery = [*CELERY, *([] if verbose else ["--quiet"])]
    if single_worker:
        workers = [
            Service(
                "worker",
                [*celery, "worker", "-Q", ",".join(SERVICE_QUEUES.values()),
                 "-n", "rome@%h", "-c", "2", "-l", log_level],
            )
        ]
    else:
        # One worker per original service, as the original ran one container each.
        workers = [
            Service(name, [*celery, "worker", "-Q", queue, "-n", f"{name}@%h",
                           "-c", str(POLL_CONCURRENCY if name == "poll" else 1),
                           "-l", log_level])
            for name, queue in SERVICE_QUEUES.items()
        ]
    workers.append(Service(PUBLISH, [*celery, "worker", "-Q", PUBLISH, "-n", f"{PUBLISH}@%h",
                                     "-P", "threads", "-c", str(PUBLISH_THREADS),
                                     "-l", log_level]))
    schedule = str(settings.data_dir / BEAT_SCHEDULE)
    # web/gunicorn_conf.py logs every request; the quiet demo does not.
    access_log = ["--access-logfile", "-" if verbose else "/dev/null"]
    return [
        *workers,
        Service("beat", [*celery, "beat", "-s", schedule, "-l", log_level]),
        # The same gunicorn settings as compose: web/gunicorn_conf.py.
        Service(
            "web",
            [sys.executable, "-m", "gunicorn", "-c", "python:web.gunicorn_conf",
             "-b", f"{url_host(host)}:{web_port}", "--log-level", log_level, *access_log,
             "web:create_app()"],
        ),
        # The password reaches Flower as FLOWER_BASIC_AUTH (see run_demo), not
        # as an argument every user of `ps` could read. Read only: a Flower
        # login shows the pipeline but cannot stop workers or send tasks.
        Service("flower", [*celery, "flower", f"--port={flower_port}", f"--address={host}",
                           f"--logging={log_level}", "--read_only"]),
    ]


def url_host(host: str) -> str:
    """Write host as it goes into a URL or a bind address: IPv6 in brackets."""
    return f"[{host}]" if ":" in host else host


def browse_address(host: str, port: int) -> str:
    """Return the URL to browse to for a server bound to host: loopback for a wildcard."""
    return f"http://{url_host({'0.0.0.0': '127.0.0.1', '::': '::1'}.get(host, host))}:{port}"


def is_loopback(host: str) -> bool:
    """Tell whether only this machine can reach an address bound to host."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def allowed_hosts(host: str) -> str:
    """Return the Host names the web must answer to when the demo listens on host.

    Loopback names always; the address itself when it is one; any name for a
    wildcard, since the demo cannot know the names other machines will use.
    """
    if host in ("0.0.0.0", "::"):
        return "*"
    return ",".join(dict.fromkeys(["localhost", "127.0.0.1", host]))


def exposure_warning(host: str, admin_token: bool) -> str | None:
    """Say what listening on host exposes, or None when only this machine can connect."""
    if is_loopback(host):
        return None
    wipeout = (
        "Wipeout is open to anyone holding ROME_ADMIN_TOKEN, and the token crosses the "
        "network unencrypted: use a long random one, on a network you trust."
        if admin_token else "Wipeout stays disabled: ROME_ADMIN_TOKEN is not set."
    )
    hosts = ("The web answers any Host name; set ROME_ALLOWED_HOSTS to the names clients use."
             if allowed_hosts(host) == "*" else "")
    # Flower 2.2 has no option to put its /metrics behind the login (docs/security.md).
    flower = ("Flower's /metrics (worker and task names, task counts and runtimes) and "
              "/healthcheck answer without its login.")
    return (f"warning: web and Flower listen on {host}, so other machines can reach them, "
            f"over plain HTTP. {wipeout} {flower} {hosts}").rstrip()


def banner(
    *, host: str, web_port: int, flower_port: int, login: FlowerLogin, data_dir: str,
    log_level: str, missing: list[str], alerts: list[str], embedded_broker: bool,
) -> list[str]:
    """Return the lines that tell a user where everything is, shown once up and on demand."""
    web = browse_address(host, web_port)
    password = (login.password if login.source != "ROME_FLOWER_AUTH"
                else "as set in ROME_FLOWER_AUTH")
    where = "" if login.source == "ROME_FLOWER_AUTH" else f" (kept in {login.source})"
    logs = ("every task and request" if log_level in ("debug", "info")
            else "warnings and errors only; `rome demo --verbose` shows every task")
    return [
        "-" * 72,
        f"Rome is up. Data in {data_dir}",
        f"  results   {web}/race",
        f"  workers   {web}/registry"
        + (f"  (still starting: {', '.join(missing)})" if missing else ""),
        # The published files (rome/publish/), which compose serves with nginx.
        f"  static    {web}/live/races/1.html   (its JSON: /live/races/1.json)",
        f"  Flower    {browse_address(host, flower_port)}   user {login.user}"
        f"   password {password}{where}",
        # Flower's Broker tab reads queues from RabbitMQ or Redis only; on kombu's
        # filesystem transport it answers 404 ("'filesystem' broker is not supported").
        *(["            its Broker tab answers 404 here: Flower lists RabbitMQ's or Redis's"
           " queues, not the embedded broker's"] if embedded_broker else []),
        f"  logs      {logs}",
        *(f"  {alert}" for alert in alerts),
        "Press Enter (or send SIGUSR1) to show this again; Ctrl-C stops everything.",
        "-" * 72,
    ]


def _get(url: str, auth: str | None = None):
    """GET url (with basic auth user:password); return its JSON, or {} for another 200."""
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    with urllib.request.urlopen(request, timeout=2) as response:
        return json.load(response) if response.headers.get_content_type().endswith("json") else {}


def wait_while_starting(supervisor: Supervisor, ready, timeout: float) -> bool:
    """Call ready() twice a second until it is true; False on a timeout, a stop or an exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if supervisor.stopping.is_set() or supervisor.exited():
            return False
        try:
            if ready():
                return True
        except (URLError, OSError, ValueError):
            pass  # not listening yet, or the registry's first answer (a 503)
        supervisor.stopping.wait(0.5)
    return False


def listen_for_enter(asked: threading.Event) -> None:
    """Set asked whenever a line arrives on stdin, unless reading it would stop this process."""
    stdin = sys.stdin
    try:
        # A background job that reads its terminal gets SIGTTIN and stops: do not read then.
        if stdin is None or (stdin.isatty() and os.tcgetpgrp(stdin.fileno()) != os.getpgrp()):
            return
    except (OSError, ValueError):
        return

    def read():
        for _ in iter(stdin.readline, ""):
            asked.set()

    threading.Thread(target=read, name="enter", daemon=True).start()


def run_demo(
    settings: Settings,
    *,
    web_port: int = 8083,
    flower_port: int = 5555,
    single_worker: bool = False,
    host: str = "127.0.0.1",
    verbose: bool = False,
) -> int:
    """Migrate, then run the whole pipeline until Ctrl-C or SIGTERM."""
    login = demo_login(settings.data_dir, settings.flower_auth)
    log_level = demo_log_level(settings.log_level, verbose)
    env = {
        **os.environ,
        "ROME_DATA_DIR": str(settings.data_dir),
        "PYTHONUNBUFFERED": "1",
        "FLOWER_BASIC_AUTH": login.basic_auth,
    }
    if settings.sources_file is not None:
        # Resolved once, so every process reads the same file whatever its folder.
        env["ROME_SOURCES"] = str(settings.sources_file)
    if "ROME_ALLOWED_HOSTS" not in os.environ:
        env["ROME_ALLOWED_HOSTS"] = allowed_hosts(host)
    superuser = superuser_warning()
    if superuser:
        # Said once, in the banner, instead of by every worker in 8 lines each.
        env["PYTHONWARNINGS"] = ",".join(
            filter(None, [os.environ.get("PYTHONWARNINGS"), QUIET_SUPERUSER_WARNING]))
    supervisor = Supervisor(
        plan(settings, web_port=web_port, flower_port=flower_port,
             single_worker=single_worker, host=host, log_level=log_level),
        env,
    )

    def request_stop(signum, _frame):
        supervisor.say("rome", f"received {signal.Signals(signum).name}, stopping")
        supervisor.stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: supervisor.asked.set())
    warning = exposure_warning(host, bool(settings.admin_token))
    for line in filter(None, [login.warning, warning]):
        supervisor.say("rome", line)
    # Flower starts once the workers answer: it asks them who they are only when it
    # starts, and its /api/workers would stay empty until someone asked it to refresh.
    # The banner waits until it has its answers, so every address in it works.
    supervisor.start([s.name for s in supervisor.services if s.name != "flower"])
    supervisor.say("rome", "starting; the addresses follow once every service answers")
    listen_for_enter(supervisor.asked)
    web, flower = browse_address(host, web_port), browse_address(host, flower_port)
    missing = worker_nodes(single_worker)

    def workers_answer() -> bool:
        # The web's registry lists the workers that answered Celery's inspect.
        listed = {w["name"].partition("@")[0] for w in _get(f"{web}/registry")["services"]}
        missing[:] = [node for node in missing if node not in listed]
        return not missing

    try:
        wait_while_starting(supervisor, workers_answer, timeout=120)
        if not supervisor.stopping.is_set():
            supervisor.start(["flower"])
            wait_while_starting(
                supervisor, lambda: len(_get(f"{flower}/api/workers", login.basic_auth))
                >= len(worker_nodes(single_worker)) - len(missing), timeout=60)
        if not supervisor.stopping.is_set() and not supervisor.exited():
            supervisor.notice = banner(
                host=host, web_port=web_port, flower_port=flower_port, login=login,
                data_dir=str(settings.data_dir), log_level=log_level, missing=missing,
                alerts=list(filter(None, [warning, superuser])),
                embedded_broker=settings.embedded_broker,
            )
            supervisor.show_notice()
        code = supervisor.wait()
    finally:
        supervisor.stop()
    return code
