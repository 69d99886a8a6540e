"""What the compose tests know of docker-compose.yml: services, environment, secrets."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.helpers.paths import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
IN_CI = bool(os.environ.get("CI"))

INFRA = {"rabbitmq", "postgresdb"}
WORKERS = ["elections_ap", "elections_mc", "elections_sos", "notekeeper", "caesar", "poll",
           "publish"]
ONE_SHOT = {"migrate"}
HOSTS = {"postgresdb": "127.0.0.1", "rabbitmq": "127.0.0.1"}
SECRET_VARS = ["POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "ROME_ADMIN_TOKEN", "ROME_FLOWER_AUTH"]
SECRET_KEY = re.compile(r"PASS|TOKEN|SECRET|AUTH|KEY", re.IGNORECASE)
DATA_DIR_IN_IMAGE = "/app/data"


# --- reading the compose file the way Compose does --------------------------------------


def env_file(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines, skipping blanks and comments, as Compose reads .env."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
        values[key.strip()] = value.strip()
    return values


_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Resolve $VAR, ${VAR}, ${VAR:-default}, ${VAR:?error} and $$ like Compose."""

    def replace(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        op, arg = match["op"], match["arg"]
        value = variables.get(name)
        missing = value is None or (op is not None and op.startswith(":") and value == "")
        if op and op.endswith("-"):
            return arg if missing else value
        if op and op.endswith("?"):
            if missing:
                raise KeyError(f"{name}: {arg}")
            return value
        return value or ""

    return _VARIABLE.sub(replace, value)


def resolve(node, variables: dict[str, str]):
    """Interpolate every string inside a parsed YAML node."""
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [resolve(item, variables) for item in node]
    if isinstance(node, dict):
        return {key: resolve(value, variables) for key, value in node.items()}
    return node


def _strings(node):
    """Every string in a parsed YAML node, keys included."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def services() -> dict[str, dict]:
    return load_compose()["services"]


def python_services() -> dict[str, dict]:
    """The services built from Rome's own image (the Dockerfile)."""
    return {name: s for name, s in services().items() if "build" in s}


def argv_of(service: dict) -> list[str]:
    """Entrypoint plus command, split as Compose splits a string command."""
    argv = []
    for key in ("entrypoint", "command"):
        part = service.get(key)
        if part is None:
            continue
        argv += shlex.split(part) if isinstance(part, str) else [str(p) for p in part]
    return argv


def environment_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def seconds(duration: str | int | float | None, default: float) -> float:
    """Turn a Compose duration such as "1m30s" or "60s" into seconds."""
    if duration is None:
        return default
    if isinstance(duration, int | float):
        return float(duration)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


def map_hosts(value: str) -> str:
    """Point a URL at 127.0.0.1 where the compose file names a service host."""
    for host, local in HOSTS.items():
        value = re.sub(rf"(?<=[@/]){host}(?=[:/]|$)", local, value)
    return value


# --- 1. the compose file validates --------------------------------------------------------


def compose_binary() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        message = "docker-compose is not installed (apt-get install docker-compose)"
        if IN_CI:
            pytest.fail(f"{message} (CI is set, so this is a failure, not a skip)")
        pytest.skip(message)
    return binary


def run_compose(directory: Path, *args: str, extra_env: dict[str, str] | None = None):
    """Run docker-compose on a copy of the compose file in `directory`.

    Compose reads `directory`/.env if the test wrote one, and nothing else: no .env of the
    working tree, and no secret or COMPOSE_* variable from the caller's shell.
    """
    compose_file = directory / COMPOSE_FILE.name
    shutil.copyfile(COMPOSE_FILE, compose_file)
    env = {
        k: v for k, v in os.environ.items()
        if k not in SECRET_VARS and k != "ROME_ENV" and not k.startswith("COMPOSE_")
    }
    env.update(extra_env or {})
    return subprocess.run(
        [compose_binary(), "-f", str(compose_file), *args],
        env=env, capture_output=True, text=True, timeout=120, cwd=directory,
    )


def resolved_config(directory: Path) -> dict:
    """`config -q` passes, and `config` gives the file as Compose resolves it."""
    check = run_compose(directory, "config", "-q")
    assert check.returncode == 0, check.stderr
    result = run_compose(directory, "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def secrets_in(config: dict) -> dict[str, set[str]]:
    """Where each secret lands once resolved: every value found for it, by variable."""
    found: dict[str, set[str]] = {name: set() for name in SECRET_VARS}
    for name, service in config["services"].items():
        env = environment_of(service)
        if "build" in service:
            found["POSTGRES_PASSWORD"].add(urlsplit(env["ROME_DATABASE_URL"]).password)
            found["RABBITMQ_PASSWORD"].add(urlsplit(env["ROME_BROKER_URL"]).password)
            found["ROME_ADMIN_TOKEN"].add(env["ROME_ADMIN_TOKEN"])
            found["ROME_FLOWER_AUTH"].add(env["ROME_FLOWER_AUTH"])
        if name == "postgresdb":
            found["POSTGRES_PASSWORD"].add(env["POSTGRES_PASSWORD"])
        if name == "rabbitmq":
            found["RABBITMQ_PASSWORD"].add(env["RABBITMQ_DEFAULT_PASS"])
        if name == "flower":
            found["ROME_FLOWER_AUTH"].add(env["FLOWER_BASIC_AUTH"])
    return found
