"""Keep docker-compose.cluster.yml honest: merged with docker-compose.yml, it is one cluster.

`docker-compose config` validates the two files together; the checks read the merged
result: three RabbitMQ nodes that name each other in docker/rabbitmq-cluster.conf, every
Python service given all three in a ROME_BROKER_URL that Rome accepts, and waiting for
all three. (The nodes' healthcheck runs against a real cluster in test_cluster.py.)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from urllib.parse import urlsplit

import pytest
import yaml

from rome.settings import SettingsError, load_settings
from tests.helpers.compose_file import (
    ENV_EXAMPLE,
    ROOT,
    compose_binary,
    env_file,
    environment_of,
    map_hosts,
)

CLUSTER_FILE = ROOT / "docker-compose.cluster.yml"
CLUSTER_CONF = ROOT / "docker" / "rabbitmq-cluster.conf"
NODES = ["rabbitmq", "rabbitmq2", "rabbitmq3"]


def merged_config(directory, env: dict[str, str] | None = None) -> dict:
    """`docker-compose config` of both files, as copied into directory (with env as .env)."""
    for path in (ROOT / "docker-compose.yml", CLUSTER_FILE):
        shutil.copyfile(path, directory / path.name)
    (directory / "docker").mkdir()
    shutil.copyfile(CLUSTER_CONF, directory / "docker" / CLUSTER_CONF.name)
    if env:
        (directory / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("COMPOSE_", "RABBITMQ_", "POSTGRES_", "ROME_"))}
    done = subprocess.run(
        [compose_binary(), "-f", "docker-compose.yml", "-f", CLUSTER_FILE.name, "config"],
        cwd=directory, env=clean, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_three_nodes_that_name_each_other_and_share_a_cookie(tmp_path):
    services = merged_config(tmp_path)["services"]
    conf = CLUSTER_CONF.read_text()
    listed = re.findall(r"^cluster_formation\.classic_config\.nodes\.\d+ = rabbit@(\S+)$", conf,
                        re.MULTILINE)
    assert listed == NODES
    assert "cluster_partition_handling = pause_minority" in conf
    cookies, volumes = set(), set()
    for name in NODES:
        node = services[name]
        assert node["hostname"] == name  # the node is rabbit@<hostname>
        mounts = [v if isinstance(v, str) else f"{v['source']}:{v['target']}"
                  for v in node["volumes"]]
        assert any(m.endswith("/etc/rabbitmq/conf.d/20-cluster.conf:ro")
                   or m.endswith(":/etc/rabbitmq/conf.d/20-cluster.conf") for m in mounts)
        volumes.update(m for m in mounts if m.endswith(":/var/lib/rabbitmq:rw")
                       or m.endswith(":/var/lib/rabbitmq"))
        cookies.add(environment_of(node)["RABBITMQ_ERLANG_COOKIE"])
        # Healthy only once all three run in one cluster.
        assert "-eq 3" in " ".join(node["healthcheck"]["test"])
        assert node["restart"] == "unless-stopped"
    assert len(volumes) == 3, "each node needs its own data volume"
    assert cookies == {env_file(ENV_EXAMPLE)["RABBITMQ_ERLANG_COOKIE"]}


def test_every_python_service_lists_the_three_nodes_and_waits_for_them(tmp_path):
    services = merged_config(tmp_path)["services"]
    python = {name: s for name, s in services.items() if "build" in s}
    assert len(python) == 11
    for name, service in python.items():
        env = {k: map_hosts(v) for k, v in environment_of(service).items()}
        url = environment_of(service)["ROME_BROKER_URL"]
        assert [urlsplit(node).hostname for node in url.split(";")] == NODES, name
        settings = load_settings(env)
        assert settings.amqp_broker and len(settings.broker_nodes) == 3, name
        if name != "migrate":  # the migration only needs PostgreSQL
            depends = service["depends_on"]
            for node in NODES:
                assert depends[node]["condition"] == "service_healthy", f"{name} -> {node}"


def test_a_dot_env_replaces_the_development_cookie_and_password(tmp_path):
    mine = {"RABBITMQ_ERLANG_COOKIE": "from-dotenv-cookie",
            "RABBITMQ_PASSWORD": "from-dotenv-rabbitmq"}
    config = merged_config(tmp_path, mine)
    text = yaml.safe_dump(config)
    for name in mine:
        assert env_file(ENV_EXAMPLE)[name] not in text, f"{name} kept its development value"
    for node in NODES:
        assert environment_of(config["services"][node])["RABBITMQ_ERLANG_COOKIE"] == (
            "from-dotenv-cookie")
    url = environment_of(config["services"]["caesar"])["ROME_BROKER_URL"]
    assert {urlsplit(node).password for node in url.split(";")} == {"from-dotenv-rabbitmq"}


def test_a_production_dot_env_that_kept_the_development_cookie_stops_the_cluster(tmp_path):
    # .env.example copied and every secret changed but the cookie.
    mine = {"POSTGRES_PASSWORD": "from-dotenv-postgres", "RABBITMQ_PASSWORD":
            "from-dotenv-rabbitmq", "ROME_ADMIN_TOKEN": "from-dotenv-admin-token",
            "ROME_FLOWER_AUTH": "ops:from-dotenv-flower"}
    example = env_file(ENV_EXAMPLE)
    services = merged_config(tmp_path, {**example, **mine})["services"]
    migrate = {k: map_hosts(v) for k, v in environment_of(services["migrate"]).items()}
    # migrate, which every Rome service waits for, refuses to run, naming the variable.
    with pytest.raises(SettingsError, match="RABBITMQ_ERLANG_COOKIE"):
        load_settings(migrate)
    # Every service that handles votes waits for it (Flower, which only shows, does not).
    for name in ("elections_ap", "elections_mc", "elections_sos", "notekeeper", "caesar",
                 "beat", "nero"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"), name
    # With a cookie of its own too, it runs.
    (tmp_path / "mine").mkdir()
    services = merged_config(tmp_path / "mine", {
        **example, **mine, "RABBITMQ_ERLANG_COOKIE": "from-dotenv-cookie"})["services"]
    load_settings({k: map_hosts(v) for k, v in environment_of(services["migrate"]).items()})
