from pathlib import Path

import pytest

from rome.settings import SettingsError, load_settings


def test_defaults_are_embedded(tmp_path):
    settings = load_settings({"ROME_DATA_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'rome.sqlite3'}"
    assert settings.broker_url.startswith("filesystem://")
    assert settings.embedded_broker and not settings.amqp_broker
    assert Path(settings.broker_transport_options["data_folder_in"]).is_relative_to(tmp_path)
    assert settings.source_interval == 2.0
    assert settings.update_chance == 0.3
    assert settings.admin_token is None
    assert settings.secret_key is None


def test_full_stack_urls():
    settings = load_settings({
        "ROME_DATABASE_URL": "postgresql://root@db/rome",
        "ROME_BROKER_URL": "amqp://rome:a-broker-password@mq:5672//",
    })
    assert settings.amqp_broker
    assert settings.broker_transport_options == {}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ROME_SOURCE_INTERVAL", "soon"),
        ("ROME_SOURCE_INTERVAL", "0"),
        ("ROME_UPDATE_CHANCE", "1.5"),
        ("ROME_UPDATE_CHANCE", "often"),
        ("ROME_REPORTING_UNITS", "2.5"),
        ("ROME_DATABASE_URL", "mysql://x/y"),
        ("ROME_BROKER_URL", "redis://localhost"),
        ("ROME_ADMIN_TOKEN", "short"),
        ("ROME_SECRET_KEY", "not-16-chars"),
        ("ROME_FLOWER_AUTH", "nopassword"),
        ("ROME_LOG_FORMAT", "xml"),
        ("ROME_LOG_LEVEL", "loud"),
        ("ROME_ALLOWED_HOSTS", "results.example.org:443"),
        ("ROME_ALLOWED_HOSTS", "https://results.example.org"),
        ("ROME_ALLOWED_HOSTS", ","),
        ("ROME_PROXY_HOPS", "-1"),
        ("ROME_PROXY_HOPS", "one"),
    ],
)
def test_bad_value_names_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})


def test_cli_reports_bad_setting(monkeypatch, capsys):
    from rome.cli import main

    monkeypatch.setenv("ROME_SOURCE_INTERVAL", "fast")
    assert main(["audit"]) == 2
    assert "ROME_SOURCE_INTERVAL" in capsys.readouterr().err


def test_log_level_is_read_in_any_case_and_unset_by_default():
    assert load_settings({}).log_level is None
    assert load_settings({"ROME_LOG_LEVEL": "INFO"}).log_level == "info"
DEVELOPMENT_ENV = {
    "ROME_DATABASE_URL": "postgresql://rome:rome-dev-postgres@postgresdb:5432/rome",
    "ROME_BROKER_URL": "amqp://rome:rome-dev-rabbitmq@rabbitmq:5672//",
    "ROME_ADMIN_TOKEN": "rome-dev-admin-token",
    "ROME_FLOWER_AUTH": "admin:rome-dev-flower",
}


def test_development_secrets_are_refused_unless_the_deployment_is_development():
    for environment in ({}, {"ROME_ENV": "production"}):
        with pytest.raises(SettingsError) as refused:
            load_settings({**DEVELOPMENT_ENV, **environment})
        for name in DEVELOPMENT_ENV:
            assert name in str(refused.value)
    settings = load_settings({**DEVELOPMENT_ENV, "ROME_ENV": "development"})
    assert settings.development and settings.admin_token == "rome-dev-admin-token"
    assert not load_settings({}).development  # production unless declared


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ROME_ADMIN_TOKEN", "rome-dev-admin-token"),
        ("ROME_FLOWER_AUTH", "ops:rome-dev-flower"),  # the password, whatever the user
        ("FLOWER_BASIC_AUTH", "admin:rome-dev-flower"),
        ("ROME_DATABASE_URL", "postgresql://rome:rome-dev-postgres@db.internal/rome"),
        ("ROME_BROKER_URL", "amqp://rome:rome-dev-rabbitmq@mq.internal//"),
    ],
)
def test_each_development_secret_is_refused_alone(name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        # Percent-encoded, as drivers decode it.
        ("ROME_BROKER_URL", "amqp://rome:rome-dev-%72abbitmq@mq.internal//"),
        ("ROME_DATABASE_URL", "postgresql://rome:rome%2Ddev%2Dpostgres@db.internal/rome"),
        # The cluster's cookie, where a process is given it.
        ("RABBITMQ_ERLANG_COOKIE", "rome-dev-erlang-cookie"),
    ],
)
def test_development_secrets_are_refused_however_written_and_wherever_carried(name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})
    load_settings({name: value, "ROME_ENV": "development"})


@pytest.mark.parametrize(
    "url",
    [
        "amqp://guest:guest@127.0.0.1:5672//",
        "amqp://127.0.0.1:5672//",  # no login: kombu logs in as guest:guest
        "pyamqp://guest@mq//",
        "amqp://g%75est:g%75est@mq//",
        "amqp://rome:secret-of-rome@mq1//;amqp://guest:guest@mq2//",
    ],
)
def test_the_default_broker_login_is_refused_outside_development(url):
    with pytest.raises(SettingsError, match="ROME_BROKER_URL") as refused:
        load_settings({"ROME_BROKER_URL": url})
    assert "guest:guest" in str(refused.value)
    assert load_settings({"ROME_BROKER_URL": url, "ROME_ENV": "development"}).amqp_broker
    # A user of its own, or guest with a password of its own, is the operator's choice.
    assert load_settings({"ROME_BROKER_URL": "amqp://guest:Tz7-broker-pw@mq//"}).amqp_broker


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ROME_ADMIN_TOKEN", "12345678"),
        ("ROME_ADMIN_TOKEN", "Password123"),  # on the list whatever its case
        ("ROME_ADMIN_TOKEN", "short-token"),  # 11 characters
        ("ROME_ADMIN_TOKEN", "123456789012345"),
        ("ROME_ADMIN_TOKEN", "aaaaaaaaaaaaaaaa"),
        ("ROME_FLOWER_AUTH", "admin:admin"),
        ("ROME_FLOWER_AUTH", "ops:changeme"),
        ("ROME_FLOWER_AUTH", "operator:operator"),
        ("ROME_FLOWER_AUTH", "ops:qwertyuiopasdf"),
        ("FLOWER_BASIC_AUTH", "admin:password"),
    ],
)
def test_weak_tokens_and_flower_logins_are_refused_outside_development(name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})
    if len(value.partition(":")[2] or value) >= 8:
        load_settings({name: value, "ROME_ENV": "development"})


def test_strong_tokens_and_logins_pass():
    settings = load_settings({"ROME_ADMIN_TOKEN": "K3v-9xq_Lw2mPz", "ROME_FLOWER_AUTH":
                              "admin:Vq8-rT2_zLk4"})
    assert settings.admin_token == "K3v-9xq_Lw2mPz" and settings.flower_auth == "admin:Vq8-rT2_zLk4"


def test_rome_env_must_be_known():
    with pytest.raises(SettingsError, match="ROME_ENV"):
        load_settings({"ROME_ENV": "staging"})


CLUSTER = ("amqp://rome:pw@mq1:5672//;amqp://rome:pw@mq2:5672//;"
           "amqp://rome:pw@mq3:5672//")


def test_a_rabbitmq_cluster_is_a_list_of_nodes():
    settings = load_settings({"ROME_BROKER_URL": CLUSTER.replace(";", " ; ")})
    assert settings.broker_url == CLUSTER  # spaces around the separators are dropped
    assert settings.broker_nodes == tuple(CLUSTER.split(";"))
    assert settings.amqp_broker and not settings.embedded_broker
    one = load_settings({"ROME_BROKER_URL": "amqp://mq1//", "ROME_ENV": "development"})
    assert one.broker_nodes == ("amqp://mq1//",)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("amqp://rome:pw@mq1//;;amqp://rome:pw@mq2//", "empty node"),
        ("amqp://rome:pw@mq1//;", "empty node"),
        ("amqp://rome:pw@mq1//;filesystem://localhost/", "not an amqp:// URL"),
        ("amqp://rome:pw@mq1//;redis://rome:pw@mq2", "not an amqp:// URL"),
        ("amqp://rome:pw@mq1//;amqp://rome:pw@mq1//", "same node twice"),
    ],
)
def test_a_bad_node_list_is_refused_without_showing_passwords(value, message):
    with pytest.raises(SettingsError, match="ROME_BROKER_URL") as error:
        load_settings({"ROME_BROKER_URL": value})
    assert message in str(error.value)
    assert "pw" not in str(error.value)


def test_max_feed_ahead_defaults_to_a_day_and_refuses_nonsense(tmp_path):
    assert load_settings({"ROME_DATA_DIR": str(tmp_path)}).max_feed_ahead == 86_400.0
    assert load_settings({"ROME_DATA_DIR": str(tmp_path),
                          "ROME_MAX_FEED_AHEAD": "600"}).max_feed_ahead == 600.0
    for bad in ("-1", "a day"):
        with pytest.raises(SettingsError, match="ROME_MAX_FEED_AHEAD"):
            load_settings({"ROME_DATA_DIR": str(tmp_path), "ROME_MAX_FEED_AHEAD": bad})
