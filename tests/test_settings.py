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
        "ROME_BROKER_URL": "amqp://guest:guest@mq:5672//",
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


CLUSTER = ("amqp://rome:pw@mq1:5672//;amqp://rome:pw@mq2:5672//;"
           "amqp://rome:pw@mq3:5672//")


def test_a_rabbitmq_cluster_is_a_list_of_nodes():
    settings = load_settings({"ROME_BROKER_URL": CLUSTER.replace(";", " ; ")})
    assert settings.broker_url == CLUSTER  # spaces around the separators are dropped
    assert settings.broker_nodes == tuple(CLUSTER.split(";"))
    assert settings.amqp_broker and not settings.embedded_broker
    assert load_settings({"ROME_BROKER_URL": "amqp://mq1//"}).broker_nodes == ("amqp://mq1//",)


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
