"""Keep docker-compose.yml honest without a Docker engine.

Three layers: `docker-compose config` validates the file, both on a fresh clone (no
.env: the local-development defaults) and with a .env that overrides them; structural
checks read the parsed YAML (healthchecks, restart policies, depends_on conditions, no
secret but the documented development defaults of .env.example); and a smoke test runs
every Python service's own command and environment from the compose file as a local
process against the local RabbitMQ and PostgreSQL, with the compose hostnames mapped to
127.0.0.1. A wrong command in the compose file fails it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml

from rome.settings import DEVELOPMENT_SECRETS, SettingsError, load_settings
from rome.store import db
from tests.helpers.compose_file import (
    _VARIABLE,
    COMPOSE_FILE,
    DATA_DIR_IN_IMAGE,
    ENV_EXAMPLE,
    IN_CI,
    ONE_SHOT,
    SECRET_KEY,
    SECRET_VARS,
    WORKERS,
    _strings,
    argv_of,
    env_file,
    environment_of,
    load_compose,
    map_hosts,
    python_services,
    resolve,
    resolved_config,
    run_compose,
    seconds,
    secrets_in,
    services,
)
from tests.helpers.paths import ROOT
from tests.helpers.support import (
    Processes,
    get,
    http,
    port_is_free,
    reset_queues,
    session_members,
    wait_for,
)


def test_fresh_clone_runs_without_a_dot_env(tmp_path):
    """`docker compose up` on a fresh clone: no .env, no secret exported."""
    assert not (tmp_path / ".env").exists()
    config = resolved_config(tmp_path)
    example = env_file(ENV_EXAMPLE)
    assert secrets_in(config) == {name: {example[name]} for name in SECRET_VARS}
    # ... which Rome takes only because the defaults declare a development deployment.
    for name in python_services():
        assert environment_of(config["services"][name])["ROME_ENV"] == "development", name
    # Compose and this file's resolver agree on every environment and command.
    ours = resolve(services(), {})
    for name, service in config["services"].items():
        assert environment_of(service) == environment_of(ours[name]), name
        assert argv_of(service) == argv_of(ours[name]), name


MINE = {
    "POSTGRES_PASSWORD": "from-dotenv-postgres",
    "RABBITMQ_PASSWORD": "from-dotenv-rabbitmq",
    "ROME_ADMIN_TOKEN": "from-dotenv-admin-token",
    "ROME_FLOWER_AUTH": "ops:from-dotenv-flower",
}


def test_dot_env_overrides_every_default(tmp_path):
    assert set(MINE) == set(SECRET_VARS)
    # .env.example copied and every secret changed, as the README says.
    (tmp_path / ".env").write_text(
        "".join(f"{k}={v}\n" for k, v in {**env_file(ENV_EXAMPLE), **MINE}.items())
    )
    config = resolved_config(tmp_path)
    assert secrets_in(config) == {name: {value} for name, value in MINE.items()}
    for name in python_services():
        assert environment_of(config["services"][name])["ROME_ENV"] == "production", name
    # No development value is left anywhere in the resolved file.
    text = yaml.safe_dump(config)
    for name in SECRET_VARS:
        assert env_file(ENV_EXAMPLE)[name] not in text, f"{name} kept its development value"


def test_every_variable_has_a_default_and_the_environment_is_one_rome_accepts():
    values = " ".join(_strings(load_compose()))  # the YAML's values, not its comments
    references = [m for m in _VARIABLE.finditer(values) if not m["escaped"]]
    # A fresh clone needs no .env: every variable is ${VAR:-default}.
    for match in references:
        assert match["op"] == ":-", f"{match[0]} has no default: a fresh clone would stop"
    assert set(SECRET_VARS) <= {m["braced"] for m in references}
    # The compose environment is one Rome accepts: on a fresh clone (development), and
    # with a .env copied from .env.example once every secret in it is changed.
    example = env_file(ENV_EXAMPLE)
    for variables in ({}, {**example, **MINE}):
        for name, service in python_services().items():
            env = {k: map_hosts(v) for k, v in resolve(environment_of(service), variables).items()}
            settings = load_settings(env)
            assert settings.flower_auth and settings.admin_token, name
            assert settings.database_url.startswith("postgresql://"), name
            assert settings.amqp_broker, name
    # A copy left unchanged declares production with public secrets: every service refuses.
    for name, service in python_services().items():
        env = {k: map_hosts(v) for k, v in resolve(environment_of(service), example).items()}
        with pytest.raises(SettingsError) as refused:
            load_settings(env)
        for variable in ("ROME_DATABASE_URL", "ROME_BROKER_URL", "ROME_ADMIN_TOKEN",
                         "ROME_FLOWER_AUTH"):
            assert variable in str(refused.value), name


# --- 2. structural checks -------------------------------------------------------------------


def test_every_long_running_service_has_a_healthcheck_and_a_restart_policy():
    expected = {"rabbitmq", "postgresdb", "migrate", "beat", "nero", "flower", "nginx",
                *WORKERS}
    assert set(services()) == expected
    for name, service in services().items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", name
            continue
        check = service.get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) > 1, name
        assert service.get("restart") == "unless-stopped", name


def test_nero_is_healthy_once_it_can_serve_whether_or_not_workers_have_started():
    # /healthz is 503 until every queue has a consumer: nero's own health is /readyz.
    [command] = services()["nero"]["healthcheck"]["test"][1:]
    assert "http://127.0.0.1:8083/readyz" in command and "/healthz" not in command


def test_depends_on_waits_for_health_or_completion():
    all_services = services()
    for name, service in all_services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on must name conditions"
        for dependency, spec in depends.items():
            assert dependency in all_services, f"{name} depends on unknown {dependency}"
            wanted = (
                "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            )
            assert spec.get("condition") == wanted, f"{name} -> {dependency}"
    for name in python_services():
        depends = all_services[name].get("depends_on") or {}
        if name in ONE_SHOT:
            assert "postgresdb" in depends
        elif name != "flower":  # Flower reads only the broker
            assert {"rabbitmq", "migrate"} <= set(depends), name
        else:
            assert "rabbitmq" in depends


def test_workers_are_scalable_and_each_consumes_its_own_queue():
    all_services = services()
    for name in WORKERS:
        service = all_services[name]
        argv = argv_of(service)
        assert argv[:4] == ["celery", "-A", "workers", "worker"], name
        assert argv[argv.index("-Q") + 1] == name
        assert argv[argv.index("-n") + 1] == f"{name}@%h"
        assert any(a.startswith(("--concurrency=", "-c")) for a in argv), name
        # Scalable: no fixed name, no host port, no fixed hostname.
        for key in ("container_name", "ports", "hostname"):
            assert key not in service, f"{name} sets {key}: --scale would clash"
        # The healthcheck pings this replica's own node ($$ reaches the shell as $).
        test = resolve(service["healthcheck"]["test"], {})
        assert f"python -m workers.ping {name}@$(hostname)" in " ".join(test), test
        # Long enough for a warm shutdown (Docker's default is 10 s).
        assert seconds(service.get("stop_grace_period"), 10) >= 30, name


def test_there_is_exactly_one_beat():
    beat = services()["beat"]
    assert (beat.get("deploy") or {}).get("replicas", 1) <= 1
    assert beat.get("scale", 1) <= 1
    argv = argv_of(beat)
    assert argv[:4] == ["celery", "-A", "workers", "beat"]
    assert "must not be scaled" in COMPOSE_FILE.read_text()
    # Only beat schedules: no worker embeds a beat (-B).
    for name in WORKERS:
        assert "-B" not in argv_of(services()[name]) and "--beat" not in argv_of(services()[name])


def test_ports_nero_public_flower_local_only():
    all_services = services()
    # Local only: the development admin token is public.
    assert all_services["nero"]["ports"] == ["127.0.0.1:8083:8083"]
    flower = all_services["flower"]
    assert flower["ports"] and all(str(p).startswith("127.0.0.1:") for p in flower["ports"])
    # Its login is in the environment, not on the command line (`ps` shows that to all);
    # read only, so a login cannot stop workers or send tasks.
    assert not any("auth" in a for a in argv_of(flower))
    assert environment_of(flower)["FLOWER_BASIC_AUTH"] == environment_of(flower)[
        "ROME_FLOWER_AUTH"]
    assert "--read_only" in argv_of(flower)
    for name, service in all_services.items():
        if name in WORKERS or name in ONE_SHOT or name == "beat":
            assert "ports" not in service, name


def test_the_only_secrets_written_are_the_development_defaults_of_env_example():
    text = COMPOSE_FILE.read_text()
    example = env_file(ENV_EXAMPLE)
    # .env.example holds the secrets and the kind of deployment, nothing else uncommented
    # (the cluster's cookie is checked with docker-compose.cluster.yml, in
    # test_compose_cluster.py).
    assert set(example) == {*SECRET_VARS, "ROME_ENV", "RABBITMQ_ERLANG_COOKIE"}
    assert example["ROME_ENV"] == "production"
    # Rome knows them, to refuse them outside development.
    assert DEVELOPMENT_SECRETS == {name: example[name] for name in SECRET_VARS}
    for name in SECRET_VARS:
        uses = re.findall(rf"\$\{{{name}(?P<op>:?[-?]|(?=\}}))(?P<arg>[^}}]*)\}}", text)
        assert uses, f"{name} is not used"
        for op, default in uses:
            assert op == ":-" and default == example[name], (
                f"${{{name}{op}{default}}}: the default must be .env.example's "
                f"{example[name]!r}"
            )
        # The development value appears only as that default, in no comment or literal.
        assert text.count(example[name]) == len(uses), f"{name}'s value written elsewhere"
    # Where a secret goes, it comes from one of those variables.
    reference = re.compile(
        rf"^\$\{{(?P<name>{'|'.join(SECRET_VARS)}):-(?P<default>[^}}]*)\}}$"
    )
    for name, service in services().items():
        for key, value in environment_of(service).items():
            if SECRET_KEY.search(key) and "USER" not in key:
                assert reference.match(value), f"{name}: {key} is not a secret's ${{VAR:-}}"
        for value in _strings(service):
            # user:password@host in a URL: the password must come from a variable.
            for password in re.findall(r"://[^:/@\s]+:([^@\s]+)@", value):
                assert reference.match(password), f"{name}: password in {value!r}"
            for flag in re.findall(r"--basic_auth=(\$\{[^}]*\}|\S+)", value):
                assert reference.match(flag), f"{name}: --basic_auth={flag}"


SOURCES_IN_IMAGE = "/app/sources"


def test_polling_shares_the_archive_and_reads_the_sources_read_only(tmp_path):
    from rome.data_files import ARCHIVE
    from workers.factory import ROUTES

    # The poll worker consumes the queue polls are routed to.
    assert {queue for task, queue in ROUTES.items() if task.startswith(("rome.poll.",
                                                                        "rome.archive."))} \
        == {"poll"}
    assert "poll" in WORKERS
    # The archive where Rome looks for it in the image (ROME_DATA_DIR's default archive),
    # one named volume for every service that reads or writes it.
    archive = load_settings({**DEVELOPMENT_SECRETS, "ROME_ENV": "development",
                             "ROME_DATA_DIR": DATA_DIR_IN_IMAGE}).archive_dir
    assert archive.as_posix() == f"{DATA_DIR_IN_IMAGE}/{ARCHIVE}"
    assert "archive" in load_compose()["volumes"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    # Made and owned by rome in the image, so the volume mounted on it is rome's too.
    assert 'mkdir -p "$ROME_DATA_DIR/archive"' in dockerfile
    assert 'chown -R rome:rome "$ROME_DATA_DIR"' in dockerfile
    assert "WORKDIR /app" in dockerfile
    # Every service of Rome's image mounts both: each one builds the Celery app, which reads
    # ROME_SOURCES (a worker without the file would stop at start); poll writes the archive,
    # notekeeper reads the claim-checked bodies back, `docker compose run migrate rome ...`
    # (`rome sources`, `rome replay --archive`) reads both.
    for name, service in python_services().items():
        mounts = [str(v) for v in service.get("volumes") or []]
        assert f"archive:{archive.as_posix()}" in mounts, name
        assert f"${{ROME_SOURCES_DIR:-./sources}}:{SOURCES_IN_IMAGE}:ro" in mounts, name
    assert (ROOT / "sources" / "README.md").is_file(), "a fresh clone has the sources folder"

    # Without ROME_SOURCES: the simulated night, as before (an empty value is unset).
    config = resolved_config(tmp_path)
    for name in python_services():
        env = {k: map_hosts(v) for k, v in environment_of(config["services"][name]).items()}
        assert env["ROME_SOURCES"] == "", name
        assert load_settings(env).sources_file is None, name
    # With it, every Python service gets it, and the name, relative to the image's
    # WORKDIR, lands in the mounted folder; ROME_SOURCES_DIR moves that folder.
    result = run_compose(tmp_path, "config", extra_env={
        "ROME_SOURCES": "sources/live.toml", "ROME_SOURCES_DIR": "/srv/rome-sources"})
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    for name in python_services():
        service = config["services"][name]
        assert environment_of(service)["ROME_SOURCES"] == "sources/live.toml", name
        binds = [v if isinstance(v, str) else f"{v['source']}:{v['target']}"
                 f"{':ro' if v.get('read_only') else ''}" for v in service["volumes"]]
        assert f"/srv/rome-sources:{SOURCES_IN_IMAGE}:ro" in binds, (name, binds)
    assert (PurePosixPath("/app") / "sources/live.toml").parent.as_posix() == SOURCES_IN_IMAGE


def test_the_feed_server_override_serves_what_its_sources_file_names():
    """docker-compose.feedserver.yml's feed server and sources/feedserver.toml agree."""
    from rome.cli import build_parser
    from rome.feeds.feedserver import FeedServer
    from rome.feeds.sources_file import load_sources

    override = yaml.safe_load((ROOT / "docker-compose.feedserver.yml").read_text())
    (name,) = override["services"]
    service = override["services"][name]
    assert service["volumes"] == ["./tests/fixtures:/fixtures:ro"]
    assert "ports" not in service, "its control paths answer anyone: keep it unpublished"
    argv = argv_of(service)
    assert argv[0] == "rome"
    args = build_parser().parse_args(argv[1:])
    assert args.host == "0.0.0.0"

    def here(paths):
        return [ROOT / "tests" / "fixtures" / Path(p).relative_to("/fixtures") for p in paths]

    with FeedServer(ap=here(args.ap), clarity=here(args.clarity), nist=here(args.nist)) as server:
        served = [(feed["id"], feed["format"],
                   feed["url"].replace(server.base_url, f"http://{name}:{args.port}"))
                  for feed in server.feeds()]
    named = [(spec.id, spec.format, spec.url)
             for spec in load_sources(ROOT / "sources" / "feedserver.toml")]
    assert named == served


def test_env_file_is_ignored_and_example_is_not():
    def ignored(path: str) -> int:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode

    assert ignored(".env") == 0, ".env must be git-ignored"
    assert ignored(".env.example") == 1, ".env.example must not be git-ignored"


def test_dockerfile_runs_as_rome_with_dependencies_in_their_own_layer():
    dockerfile = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in dockerfile.splitlines()]
    assert [x for x in lines if x.startswith("FROM")] == ["FROM python:3.11-slim"]
    requirements = lines.index("RUN pip install -r requirements.txt")
    first_source = min(i for i, x in enumerate(lines) if x.startswith("COPY rome"))
    assert requirements < first_source
    assert "USER rome" in lines
    assert "EXPOSE 8083 5555" in lines
    assert any("ROME_DATA_DIR=/app/data" in x for x in lines)
    for name, service in python_services().items():
        assert service.get("user") in (None, "rome"), f"{name} overrides the image's user"



# --- 3. the compose commands run the pipeline -------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def local_ports(ports: list[int]) -> dict[int, int]:
    """Keep the compose ports; off CI, move one that something else already holds."""
    moved = {}
    for port in ports:
        if not IN_CI and not port_is_free(port):
            moved[port] = free_port()
    return moved


def relocate(value: str, data_dir: Path, ports: dict[int, int]) -> str:
    """Map the image's data folder and any moved port to this machine's."""
    value = value.replace(DATA_DIR_IN_IMAGE, str(data_dir))
    for old, new in ports.items():
        value = re.sub(rf"(?<=[:=]){old}\b", str(new), value)
    return value


def post(url: str, auth: str, timeout: float = 10):
    """POST an empty JSON object with basic auth; return (status, body)."""
    return http(url, method="POST", auth=auth, timeout=timeout,
                headers={"Content-Type": "application/json"}, data=b"{}")


def healthcheck_argv(test: list[str]) -> list[str]:
    kind, *rest = test
    if kind == "CMD-SHELL":
        return ["/bin/sh", "-c", rest[0]]
    assert kind == "CMD", test
    return rest


@pytest.mark.slow
def test_compose_commands_run_the_pipeline(
    pg_url, amqp_url, tmp_path, monkeypatch, empty_tables
):
    compose = resolve(python_services(), {})  # a fresh clone: the development defaults
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    logs = tmp_path / "logs"
    logs.mkdir()
    ports = local_ports([8083, 5555])
    web_port, flower_port = ports.get(8083, 8083), ports.get(5555, 5555)

    # Run from the source tree, as the image's WORKDIR holds it, and with only the
    # environment compose gives (no ROME_* or FLOWER_* leaking in from this shell).
    monkeypatch.chdir(ROOT)
    for key in list(os.environ):
        if key.startswith(("ROME_", "FLOWER_")):
            monkeypatch.delenv(key)

    def service_env(name: str) -> dict[str, str]:
        env = {k: map_hosts(v) for k, v in environment_of(compose[name]).items()}
        # The compose URLs name the services' hosts and ports; the local servers use
        # the test credentials and database, so those two URLs are swapped whole.
        for key, test_url in (("ROME_DATABASE_URL", pg_url), ("ROME_BROKER_URL", amqp_url)):
            ours, theirs = urlsplit(env[key]), urlsplit(test_url)
            assert (ours.scheme, ours.hostname, ours.port) == (
                theirs.scheme, theirs.hostname, theirs.port or ours.port
            ), f"{name}: {key}={env[key]} does not match the local server {test_url}"
            env[key] = test_url
        env.update(
            ROME_DATA_DIR=str(data_dir),
            ROME_SOURCE_INTERVAL="0.25",
            ROME_UPDATE_CHANCE="1",
            # The executables of the image's PATH (celery, gunicorn, rome, python).
            PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
            # Docker sets HOSTNAME to the container's hostname, which %h expands to.
            HOSTNAME=socket.gethostname(),
        )
        return env

    reset_queues(amqp_url)  # no message of an earlier run; queues declared afresh

    # migrate first, to completion, as depends_on: service_completed_successfully does.
    migrate = Processes(service_env("migrate"), logs)
    done = migrate.run(argv_of(compose["migrate"]), timeout=120)
    assert done.returncode == 0, f"migrate failed:\n{done.stdout}\n{done.stderr}"
    database = db.connect(pg_url)
    empty_tables(database)
    database.engine.dispose()

    started: dict[str, tuple[Processes, subprocess.Popen]] = {}
    names = [name for name in compose if name not in ONE_SHOT]

    def tail(name: str) -> str:
        return started[name][0].log(name)[-3000:]

    def all_alive() -> None:
        for name, (_, proc) in started.items():
            if proc.poll() is not None:
                raise AssertionError(
                    f"{name} exited with {proc.returncode}:\n{tail(name)}"
                )

    try:
        for name in names:
            argv = [relocate(a, data_dir, ports) for a in argv_of(compose[name])]
            processes = Processes(service_env(name), logs)
            started[name] = (processes, processes.start(name, argv))

        base = f"http://127.0.0.1:{web_port}"
        flower_auth = environment_of(compose["flower"])["ROME_FLOWER_AUTH"]

        def healthy():
            all_alive()
            status, body = get(f"{base}/healthz")
            return status == 200 and json.loads(body)["status"] == "ok"

        wait_for(healthy, 60, interval=0.5, what="nero's /healthz to answer 200")

        def every_race_counted():
            all_alive()
            status, body = get(f"{base}/api/races")
            if status != 200:
                return None
            races = json.loads(body)["races"]
            counted = len(races) == 3 and all(
                race["total_votes"] > 0 and all(s["changes"] > 0 for s in race["sources"])
                for race in races
            )
            return races if counted else None

        races = wait_for(every_race_counted, 120, interval=1, what="votes in every race")
        assert {s["id"] for race in races for s in race["sources"]} == {"ap", "mc", "sos"}

        # The publish worker bakes them into the data folder's public/ (nginx's root).
        def published():
            all_alive()
            path = data_dir / "public" / "races" / f"{races[0]['id']}.json"
            return path.exists() and json.loads(path.read_bytes())["total_votes"] > 0

        wait_for(published, 60, interval=0.5, what="the publish worker to publish a race")

        # /race itself: the page, and the original's rows as JSON.
        status, page = get(f"{base}/race", accept="text/html")
        assert status == 200 and b"<html" in page.lower()
        status, body = get(f"{base}/race", accept="application/json")
        assert status == 200
        rows = json.loads(body)
        votes_by_race: dict[int, int] = {}
        for row in rows:
            votes_by_race[row["raceID"]] = votes_by_race.get(row["raceID"], 0) + row["voteCount"]
        assert len(votes_by_race) == 3 and all(v > 0 for v in votes_by_race.values())

        # Flower: a password is needed, and it lists one worker per worker service.
        flower = f"http://127.0.0.1:{flower_port}"
        wait_for(
            lambda: all_alive() or get(f"{flower}/api/workers", auth=flower_auth)[0] == 200,
            60, interval=0.5, what=f"Flower to accept the login {flower_auth.split(':')[0]}",
        )
        for wrong in (None, flower_auth + "x"):
            status, _ = get(f"{flower}/api/workers", auth=wrong)
            assert status == 401, f"Flower answered with login {wrong!r}: {status}"

        def one_worker_per_service():
            all_alive()
            status, body = get(f"{flower}/api/workers?refresh=1", auth=flower_auth, timeout=20)
            if status != 200:
                return None
            workers = json.loads(body)
            ours = sorted(w for w in workers if w.split("@")[0] in WORKERS)
            return ours if sorted(w.split("@")[0] for w in ours) == sorted(WORKERS) else None

        listed = wait_for(one_worker_per_service, 90, interval=2,
                          what="Flower to list one worker per service")
        assert all(w.endswith("@" + socket.gethostname()) for w in listed), listed
        # ... and its login controls nothing: no shutdown, no task sent around notekeeper.
        caesar = next(w for w in listed if w.startswith("caesar@"))
        for path in (f"/api/worker/shutdown/{caesar}", "/api/task/async-apply/rome.caesar.record"):
            status, _ = post(f"{flower}{path}", auth=flower_auth)
            assert status == 403, f"Flower let its login POST {path}: {status}"

        # Every service's own healthcheck passes against the running services.
        checks = {}
        for name in names:
            test = [relocate(a, data_dir, ports) for a in compose[name]["healthcheck"]["test"]]
            checks[name] = subprocess.Popen(
                healthcheck_argv(test), env={**os.environ, **service_env(name)},
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
        for name, check in checks.items():
            limit = seconds(compose[name]["healthcheck"].get("timeout"), 30)
            output, _ = check.communicate(timeout=limit + 30)
            assert check.returncode == 0, f"{name} healthcheck failed:\n{output}"

        # Stop as `docker compose stop` does with init: true: SIGTERM to the service's
        # main process only, then it has stop_grace_period to end with all its children.
        all_alive()
        for _, proc in started.values():
            os.kill(proc.pid, signal.SIGTERM)
        deadline = {
            name: time.monotonic() + seconds(compose[name].get("stop_grace_period"), 10)
            for name in started
        }
        for name, (_, proc) in started.items():
            try:
                proc.wait(max(0.1, deadline[name] - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise AssertionError(
                    f"{name} did not stop within its stop_grace_period:\n{tail(name)}"
                ) from None
            assert proc.returncode == 0, f"{name} exited with {proc.returncode}:\n{tail(name)}"
        sessions = {proc.pid for _, proc in started.values()}
        wait_for(lambda: not session_members(sessions), 10, what="every child to exit")
    finally:
        for processes, _ in started.values():
            processes.stop(grace=5)
    assert not session_members({proc.pid for _, proc in started.values()})
