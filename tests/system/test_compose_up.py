"""`docker compose up`, for real: the unchanged docker-compose.yml and Dockerfile on podman.

Debian's `docker-compose` drives podman's Docker API (tests/helpers/compose_stack/stack.py), with
test stand-ins for the four images we cannot pull (tests/helpers/compose_stack/standins.py). In
order: every service turns healthy and migrate completes; votes grow at /race through the
published port; nginx serves a published race with gzip, its ETag and Cache-Control;
Flower wants its login and lists the seven workers; /registry lists them too; `--scale
caesar=2` gives two caesar workers and totals `rome audit` finds exact; `restart caesar` in
the middle of a known stream loses none of it; with `ROME_SOURCES` set
and a feed server added (an override file of the test's own), the poll worker polls it and
the polled races reach /api/races through the shared archive; `down -v` leaves no
container, network or volume. The stack is removed even when a step fails.

It needs root, podman, docker-compose and debootstrap: it skips without them, and fails
instead when CI is set. The compose file publishes fixed ports (8083, 8084, 5555, 15672 on
127.0.0.1) that Compose v1 cannot move, so the test fails at once if one is taken.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.helpers.compose_stack import stack as podman_stack
from tests.helpers.compose_stack.logs import error_lines
from tests.helpers.compose_stack.standins import build_rome_image, ensure_standins
from tests.helpers.paths import ROOT
from tests.helpers.support import get, get_raw, http, port_is_free, wait_for

# The first test's time includes bringing the stack up: on a new machine that means
# debootstrapping the stand-ins (about 4 minutes here) before the rest.
pytestmark = [pytest.mark.compose, pytest.mark.slow, pytest.mark.timeout(1500)]

IN_CI = bool(os.environ.get("CI"))
WORKERS = ["elections_ap", "elections_mc", "elections_sos", "notekeeper", "caesar", "poll",
           "publish"]
LONG_RUNNING = ["rabbitmq", "postgresdb", *WORKERS, "beat", "nero", "flower", "nginx"]
PORTS = [8083, 8084, 5555, 15672]
SECRET_VARS = ("POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "ROME_ADMIN_TOKEN", "ROME_FLOWER_AUTH")
NERO = "http://127.0.0.1:8083"
NGINX = "http://127.0.0.1:8084"
FLOWER = "http://127.0.0.1:5555"
RABBITMQ_API = "http://127.0.0.1:15672/api"
# Time limits, each well above what a run on our 2-core machines takes (README).
UP_LIMIT = 420
HEALTHY_LIMIT = 240
# The known stream for the restart: 60 s, to outlast a restart of caesar (15-25 s here).
STREAM_UPDATES, STREAM_BATCH, STREAM_RATE = 6000, 20, 100


def unavailable(message: str):
    if IN_CI:
        pytest.fail(f"{message} (CI is set, so this is a failure, not a skip)")
    pytest.skip(message)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "rome-compose-test"


class Stack:
    """The running project: Compose, its healthchecks, its resolved settings, its timings."""

    def __init__(self, compose: podman_stack.Compose, checker: podman_stack.HealthChecker,
                 work: Path):
        self.compose, self.checker, self.work = compose, checker, work
        self.project = compose.project
        self.phases: dict[str, float] = {}
        self.config: dict = {}

    @contextmanager
    def phase(self, name: str):
        started = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = time.monotonic() - started

    def env_of(self, service: str) -> dict[str, str]:
        env = self.config["services"][service].get("environment") or {}
        return {key: str(value) for key, value in env.items()}

    @property
    def flower_auth(self) -> str:
        return self.env_of("flower")["ROME_FLOWER_AUTH"]

    @property
    def rabbitmq_auth(self) -> str:
        env = self.env_of("rabbitmq")
        return f"{env['RABBITMQ_DEFAULT_USER']}:{env['RABBITMQ_DEFAULT_PASS']}"

    def containers(self, service: str | None = None) -> list[dict]:
        found = podman_stack.project_containers(self.project)
        return [c for c in found if service is None or podman_stack.service_of(c) == service]

    def states(self) -> dict[str, list[tuple[str, str | None, int]]]:
        """Per service: (status, health, exit code) of each of its containers."""
        states: dict[str, list] = {}
        for container in self.containers():
            state = container["State"]
            states.setdefault(podman_stack.service_of(container), []).append(
                (state["Status"], podman_stack.health_of(container), state.get("ExitCode", 0))
            )
        return states

    def healthy(self) -> bool:
        states = self.states()
        migrated = states.get("migrate") == [("exited", None, 0)]
        return migrated and all(
            states.get(name) and all(status == "running" and health == "healthy"
                                     for status, health, _ in states[name])
            for name in LONG_RUNNING
        )

    def wait_healthy(self, what: str) -> None:
        """Wait until every service is healthy; on timeout say where each one stands."""
        try:
            wait_for(self.healthy, HEALTHY_LIMIT, interval=2, what=what)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\nstates: {self.states()}\nlast checks: {self.checker.last_output}"
                f"\n{self.compose.tail()}"
            ) from None

    def rome(self, *args: str, mount: Path | None = None, timeout: float = 180):
        """Run a `rome` command in a one-off container of the image, on the project network."""
        volume = ["-v", f"{mount}:/out"] if mount else []
        return self.compose.run("run", "--rm", "--no-deps", *volume, "migrate", "rome", *args,
                                timeout=timeout, check=False)

    def logs(self) -> str:
        return self.compose.run("logs", "--no-color", timeout=120).stdout


def total_votes() -> int | None:
    """The sum of voteCount over /race's JSON rows, read through the published port."""
    status, body = get(f"{NERO}/race", accept="application/json")
    if status != 200:
        return None
    return sum(int(row["voteCount"]) for row in json.loads(body))


def queued_messages(auth: str) -> int | None:
    """Messages ready or unacknowledged in every queue, from RabbitMQ's management API."""
    status, body = get(f"{RABBITMQ_API}/queues/%2F", auth=auth)
    if status != 200:
        return None
    return sum(q.get("messages", 0) + q.get("messages_unacknowledged", 0)
               for q in json.loads(body))


def wait_drained(auth: str, timeout: float = 120) -> None:
    """Wait until Rome's queues are empty and the totals at /race have stopped moving."""
    totals: list[int | None] = []

    def drained():
        totals.append(total_votes())
        # The management API's counts lag up to 5 s: also ask for 3 equal totals, 3 s apart.
        return (queued_messages(auth) == 0 and totals[-1] is not None
                and len(totals) >= 3 and len(set(totals[-3:])) == 1)

    wait_for(drained, timeout, interval=3, what="Rome's queues to drain")


def flower_workers(auth: str) -> dict[str, dict] | None:
    status, body = get(f"{FLOWER}/api/workers?refresh=1", auth=auth, timeout=30)
    return json.loads(body) if status == 200 else None


def registry_nodes() -> list[str] | None:
    status, body = get(f"{NERO}/registry", timeout=30)
    if status != 200:
        return None
    return sorted(w["name"] for w in json.loads(body)["services"])


def nodes_of(names, service: str) -> list[str]:
    return [n for n in names if n.partition("@")[0] == service]


@pytest.fixture(scope="module")
def stack(request, tmp_path_factory):
    missing = podman_stack.missing_tools()
    if missing:
        unavailable(f"{', '.join(missing)} not installed (apt-get install podman runc "
                    "netavark aardvark-dns catatonit debootstrap docker-compose)")
    if os.geteuid() != 0:
        unavailable("the compose test needs root: debootstrap and rootful podman")
    taken = [port for port in PORTS if not port_is_free(port)]
    if taken:
        pytest.fail(
            f"127.0.0.1:{', '.join(map(str, taken))} already in use: docker-compose.yml "
            f"publishes {', '.join(map(str, PORTS))} at fixed ports that Compose v1 cannot "
            "move; free them (another compose test or rome demo?) and run again"
        )
    work = tmp_path_factory.mktemp("compose")
    compose_file = work / "docker-compose.yml"
    compose_file.write_bytes((ROOT / "docker-compose.yml").read_bytes())
    # The sources folder a clone has beside the compose file (mounted at /app/sources).
    (work / "sources").mkdir()
    (work / "sources" / "README.md").write_bytes((ROOT / "sources" / "README.md").read_bytes())
    # What the compose file mounts from beside itself.
    (work / "docker").mkdir()
    (work / "docker" / "nginx.conf").write_bytes((ROOT / "docker" / "nginx.conf").read_bytes())
    service = podman_stack.PodmanService(work)
    project = f"rometest{uuid.uuid4().hex[:8]}"
    compose = podman_stack.Compose(project, compose_file, service.docker_host,
                                   work / "compose.log", drop=SECRET_VARS)
    stack = Stack(compose, podman_stack.HealthChecker(project), work)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    try:
        with stack.phase("stand-in images (debootstrap + import, unless cached)"):
            ensure_standins(podman_stack.podman_env(), work)
        with stack.phase("rome:local build"):
            build_rome_image(podman_stack.podman_env(), cache_dir(), work / "rome-build.log")
        service.start()
        stack.config = yaml.safe_load(compose.run("config", timeout=60).stdout)
        stack.checker.start()
        with stack.phase("up -d (returns once migrate is done)"):
            compose.run("up", "-d", "--no-build", timeout=UP_LIMIT)
        with stack.phase("until every service is healthy"):
            stack.wait_healthy("every service healthy and migrate completed")
        yield stack
    finally:
        stack.checker.stop()
        with stack.phase("cleanup"):
            if any(podman_stack.leftovers(project).values()):
                compose.run("down", "-v", "--remove-orphans", "-t", "10", timeout=300,
                            check=False)
                podman_stack.remove_project(project)
        service.stop()
        if reporter:  # past the output capture, so that every run shows its timings
            with request.config.pluginmanager.get_plugin("capturemanager") \
                    .global_and_fixture_disabled():
                reporter.write_line("")
                for name, seconds in stack.phases.items():
                    reporter.write_line(f"compose phase: {seconds:7.1f} s  {name}")
        left = podman_stack.leftovers(project)
        assert not any(left.values()), f"cleanup left {left}"


def test_every_service_turns_healthy_and_migrate_completes(stack):
    states = stack.states()
    assert states["migrate"] == [("exited", None, 0)]
    for name in LONG_RUNNING:
        assert states[name] == [("running", "healthy", 0)], (name, states[name])
    assert stack.checker.runs > 0, "no healthcheck ran: podman cannot schedule them here"
    # Published only on 127.0.0.1: nero, nginx, Flower and RabbitMQ's management UI.
    published = {}
    for container in stack.containers():
        for port, bindings in (container["NetworkSettings"].get("Ports") or {}).items():
            for binding in bindings or []:
                published[(podman_stack.service_of(container), port)] = binding["HostIp"]
    assert published == {
        ("nero", "8083/tcp"): "127.0.0.1",
        ("nginx", "80/tcp"): "127.0.0.1",
        ("flower", "5555/tcp"): "127.0.0.1",
        ("rabbitmq", "15672/tcp"): "127.0.0.1",
    }


def test_votes_grow_at_race_through_the_published_port(stack):
    with stack.phase("first votes, then more, at /race"):
        first = wait_for(total_votes, 120, interval=2, what="votes at /race")
        wait_for(lambda: (total_votes() or 0) > first, 120, interval=2,
                 what=f"the votes at /race to grow past {first}")
    status, page = get(f"{NERO}/race", accept="text/html")
    assert status == 200 and b"<html" in page.lower()


def nginx_get(path: str, headers: dict[str, str] | None = None):
    """(status, headers, body) of one request to nginx, a 304 included."""
    return get_raw(8084, path, headers)


def test_nginx_serves_a_published_race_with_gzip_its_etag_and_cache_control(stack):
    def published() -> dict | None:
        status, _, body = nginx_get("/races/1.json")
        race = json.loads(body) if status == 200 else None
        return race if race and race["total_votes"] > 0 else None

    race = wait_for(published, 120, interval=2, what="race 1 published with votes, via nginx")
    status, api = get(f"{NERO}/api/races/1")
    assert status == 200 and json.loads(api)["id"] == race["id"] == 1
    status, headers, body = nginx_get("/races/1.json", {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"  # the .gz beside it
    assert json.loads(gzip.decompress(body))["id"] == 1
    assert headers["Content-Type"].startswith("application/json")
    assert headers["Cache-Control"] == "public, max-age=5"
    tag = headers["ETag"]
    status, again, body = nginx_get("/races/1.json",
                                    {"Accept-Encoding": "gzip", "If-None-Match": tag})
    assert (status, body) in ((304, b""),) or again["ETag"] != tag  # unless it just changed
    status, headers, _ = nginx_get("/assets/race.js")
    assert status == 200 and headers["Cache-Control"] == "public, max-age=3600"
    status, _, page = nginx_get("/races/1.html")
    assert status == 200 and b'data-race-json="1.json"' in page
    assert nginx_get("/.publish-lag.json")[0] == 404
    status, index = get(f"{NERO}/api/index")
    assert json.loads(nginx_get("/index.json")[2])["races"] == json.loads(index)["races"]


def test_no_service_logged_an_error_while_starting(stack):
    # All but one report of RabbitMQ's that its maintainers call harmless: see error_lines.
    errors = error_lines(stack.logs())
    assert not errors, "\n".join(errors[:20])


def test_flower_wants_its_login_and_lists_every_worker(stack):
    for wrong in (None, "admin:not-the-password"):
        status, _ = get(f"{FLOWER}/api/workers", auth=wrong)
        assert status == 401, f"Flower answered {status} to login {wrong!r}"

    def one_of_each():
        workers = flower_workers(stack.flower_auth) or {}
        nodes = sorted(n.partition("@")[0] for n in workers)
        return workers if nodes == sorted(WORKERS) else None

    workers = wait_for(one_of_each, 90, interval=3, what="Flower to list the seven workers")
    # Each is named after its container's hostname, as `-n NAME@%h` in the compose file says.
    hostnames = {c["Config"]["Hostname"] for c in stack.containers()}
    assert {name.partition("@")[2] for name in workers} <= hostnames


def test_registry_lists_every_worker(stack):
    def one_of_each():
        nodes = registry_nodes() or []
        return nodes if sorted(n.partition("@")[0] for n in nodes) == sorted(WORKERS) else None

    wait_for(one_of_each, 60, interval=2, what="/registry to list the seven workers")
    status, body = get(f"{NERO}/registry?service=caesar", timeout=30)
    assert status == 200
    # On RabbitMQ the work queues are quorum queues, named <queue>.quorum (workers/queues.py).
    assert [w["queues"] for w in json.loads(body)["services"]] == [["caesar.quorum"]]


def test_scale_caesar_to_two_and_the_totals_stay_exact(stack):
    with stack.phase("up --scale caesar=2, until both are healthy and working"):
        stack.compose.run("up", "-d", "--no-build", "--scale", "caesar=2", timeout=UP_LIMIT)
        assert len(stack.containers("caesar")) == 2
        stack.wait_healthy("both caesar containers, and every other service, healthy")
        wait_for(lambda: len(nodes_of(registry_nodes() or [], "caesar")) == 2, 60, interval=2,
                 what="/registry to list two caesar workers")

        def both_record():
            workers = flower_workers(stack.flower_auth) or {}
            done = [(w.get("stats") or {}).get("total", {}).get("rome.caesar.record", 0)
                    for name, w in workers.items() if name.startswith("caesar@")]
            return len(done) == 2 and all(done)

        wait_for(both_record, 180, interval=5,
                 what="both caesar workers to record updates (Flower's task counts)")
    audit = stack.rome("audit")
    assert audit.returncode == 0 and "audit ok" in audit.stdout, audit.stdout


def test_restart_caesar_mid_stream_loses_nothing(stack, tmp_path):
    """A known stream (`rome inject`) runs while `restart caesar`; the totals end exact."""
    auth = stack.rabbitmq_auth
    token = stack.env_of("nero")["ROME_ADMIN_TOKEN"]
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)  # written by the image's unprivileged user
    stack.compose.run("stop", "beat", timeout=120)
    try:
        with stack.phase("drain the sources' ticks, wipe out"):
            wait_drained(auth)
            status, body = http(f"{NERO}/race/wipeout", method="POST",
                                headers={"Authorization": f"Bearer {token}"})
            assert status == 200, body
            assert total_votes() == 0
        with stack.phase("known stream (60 s) with a restart of caesar in the middle"):
            inject = stack.compose.popen(
                "run", "--rm", "--no-deps", "-v", f"{out}:/out", "migrate", "rome", "inject",
                "--updates", str(STREAM_UPDATES), "--batch", str(STREAM_BATCH),
                "--rate", str(STREAM_RATE), "--expect", "/out/expect.json",
            )
            try:
                wait_for(lambda: inject.poll() is None and (total_votes() or 0) > 0, 90,
                         interval=0.5, what="the stream to be under way and counted")
                started = {c["Id"]: c["State"]["StartedAt"] for c in stack.containers("caesar")}
                with stack.phase("restart caesar"):
                    stack.compose.run("restart", "caesar", timeout=240)
                assert inject.poll() is None, (
                    "the stream ended before caesar came back: make it longer, or the restart "
                    "was not in the middle of it"
                )
                after = {c["Id"]: c["State"]["StartedAt"] for c in stack.containers("caesar")}
                assert after.keys() == started.keys()
                assert all(after[cid] != started[cid] for cid in after), "caesar not restarted"
                stdout, _ = inject.communicate(timeout=180)
                assert inject.returncode == 0, stdout
            finally:
                if inject.poll() is None:
                    inject.kill()
                    inject.communicate()
        with stack.phase("stream drained and audited"):
            wait_drained(auth, timeout=180)
            audit = stack.rome("audit", "--expect", "/out/expect.json", mount=out)
            assert audit.returncode == 0 and "audit ok" in audit.stdout, audit.stdout
    finally:
        stack.compose.run("start", "beat", timeout=120, check=False)


# The polling step: docker-compose.feedserver.yml and sources/feedserver.toml, as the README
# runs them: the recorded AP, Clarity and NIST fixtures, each through its night of versions.
FEEDSERVER_FILE = "docker-compose.feedserver.yml"
SOURCES_FILE = "sources/feedserver.toml"
AP_FIXTURE = ROOT / "tests" / "fixtures" / "ap" / "20151103_national-co.json"
AP_ID = "ap_20151103"
POLLED = {AP_ID, "cl_ga", "nist_atkinson_20"}


def fixture_totals() -> list[int]:
    """Each race's statewide total in the AP file: where the feed's night ends."""
    races = json.loads(AP_FIXTURE.read_text())["races"]
    return sorted(sum(c["voteCount"] for c in unit["candidates"])
                  for race in races for unit in race["reportingUnits"]
                  if unit["level"] == "state")


def polled_totals(source: str) -> list[int] | None:
    status, body = get(f"{NERO}/api/races", timeout=30)
    if status != 200:
        return None
    return sorted(race["total_votes"] for race in json.loads(body)["races"]
                  if source in {s["id"] for s in race["sources"]})


def test_rome_sources_polls_the_feed_server_through_the_shared_archive(stack):
    """ROME_SOURCES set: beat polls, the poll worker fetches, notekeeper reads the archive.

    The poll worker sends notekeeper only the archive row's id (claim check); notekeeper
    reads the body from the archive volume. Without that volume in both, no polled race
    would ever be counted.
    """
    for name in (FEEDSERVER_FILE, SOURCES_FILE):
        (stack.work / name).write_bytes((ROOT / name).read_bytes())
    shutil.copytree(ROOT / "tests" / "fixtures", stack.work / "tests" / "fixtures")
    polling = podman_stack.Compose(stack.project, stack.compose.compose_file,
                                   stack.compose.env["DOCKER_HOST"], stack.compose.log,
                                   drop=SECRET_VARS)
    polling.argv += ["-f", str(stack.work / FEEDSERVER_FILE)]
    polling.env["ROME_SOURCES"] = SOURCES_FILE
    want = fixture_totals()
    with stack.phase("up with ROME_SOURCES and the feed server, until the polled night ends"):
        polling.run("up", "-d", "--no-build", timeout=UP_LIMIT)
        stack.wait_healthy("every service healthy again, polling")
        wait_for(lambda: polled_totals(AP_ID) == want, 180, interval=3,
                 what=f"the polled AP races at /api/races to reach the file's totals {want}")
    # Every Python service took the setting; the simulated night stopped (beat polls).
    for container in stack.containers():
        service = podman_stack.service_of(container)
        if service in (*WORKERS, "beat", "nero", "flower"):
            assert f"ROME_SOURCES={SOURCES_FILE}" in container["Config"]["Env"], service
    status, body = get(f"{NERO}/api/sources", timeout=30)
    assert status == 200, body
    sources = {s["id"]: s for s in json.loads(body)["sources"]}
    assert set(sources) == POLLED, sources
    for source in POLLED:
        wait_for(lambda source=source: polled_totals(source), 60, interval=3,
                 what=f"races of {source} at /api/races")
    # One archive for both: what poll wrote, notekeeper sees under the same names.
    listings = []
    for service in ("poll", "notekeeper"):
        (container,) = [c for c in stack.containers(service) if c["State"]["Running"]]
        found = podman_stack.podman("exec", container["Id"], "find", "/app/data/archive",
                                    "-name", "*.gz")
        listings.append(sorted(found.stdout.split()))
    assert listings[0] and listings[0] == listings[1], listings


def test_down_v_leaves_no_container_network_or_volume(stack):
    assert stack.containers(), "nothing to take down"
    with stack.phase("down -v"):
        stack.compose.run("down", "-v", "--remove-orphans", timeout=300)
    assert podman_stack.leftovers(stack.project) == {
        "containers": [], "networks": [], "volumes": []
    }
