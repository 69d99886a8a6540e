"""The embedded broker never shows a consumer a message that is still being written."""

from __future__ import annotations

import os

import pytest
from kombu import Connection

from workers.transport import AtomicFilesystemTransport


@pytest.fixture
def channel(tmp_path):
    folder = tmp_path / "queue"
    folder.mkdir()
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder),
               "control_folder": str(tmp_path / "control")}
    with Connection("filesystem://localhost/", transport=AtomicFilesystemTransport,
                    transport_options=options) as conn:
        yield conn.default_channel


def test_a_message_is_invisible_until_it_is_whole(channel, monkeypatch):
    from kombu.transport.virtual import Empty

    seen_during_write = []
    real_replace = os.replace

    def replace_after_a_read(src, dst):
        # A consumer polls at the worst moment: the bytes are written, not yet renamed.
        try:
            seen_during_write.append(channel._get("notekeeper"))
        except Empty:
            seen_during_write.append(None)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_after_a_read)
    channel._put("notekeeper", {"body": "x" * 100_000})
    assert seen_during_write == [None]
    assert channel._get("notekeeper") == {"body": "x" * 100_000}


def test_the_celery_app_uses_it_for_the_embedded_broker():
    from workers import app, settings

    if settings.embedded_broker:
        assert app.connection_for_write().transport_cls.endswith("AtomicFilesystemTransport")


def test_opening_a_channel_makes_the_folders(tmp_path):
    options = {"data_folder_in": str(tmp_path / "a" / "queue"),
               "data_folder_out": str(tmp_path / "a" / "queue"),
               "control_folder": str(tmp_path / "a" / "control")}
    with Connection("filesystem://localhost/", transport=AtomicFilesystemTransport,
                    transport_options=options) as conn:
        conn.default_channel.basic_publish  # noqa: B018  (opens the channel)
        assert (tmp_path / "a" / "queue").is_dir() and (tmp_path / "a" / "control").is_dir()
