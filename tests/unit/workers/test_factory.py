"""The Celery app: built once from settings, by a factory, with nothing made on import."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rome.settings import load_settings
from workers.factory import create_app, topology
from workers.queues import QUEUES
from workers.schedule import FolderMakingScheduler

# What `celery -A workers worker` does to find and load the app, in a fresh
# interpreter: importing the package, Celery's own lookup, then the tasks.
LOAD_THE_APP = """
import json, os, sys
import workers
from celery.app.utils import find_app
app = find_app("workers")
app.loader.import_default_modules()
print(json.dumps({
    "same": app is workers.app and app.conf is workers.app.conf,
    "tasks": sorted(name for name in app.tasks if name.startswith("rome.")),
    "exists": os.path.exists(os.environ["ROME_DATA_DIR"]),
}))
"""


def test_loading_the_app_makes_no_folder(tmp_path):
    data_dir = tmp_path / "not" / "there"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROME_")}
    env["ROME_DATA_DIR"] = str(data_dir)
    done = subprocess.run([sys.executable, "-c", LOAD_THE_APP], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert loaded["tasks"] == ["rome.archive.prune", "rome.caesar.record",
                               "rome.notekeeper.normalize", "rome.poll.run", "rome.publish.races",
                               "rome.source.emit"]
    assert loaded["same"]
    assert loaded["exists"] is False
    assert not data_dir.exists() and not (tmp_path / "not").exists()


@pytest.mark.parametrize("broker", ["filesystem://localhost/", "amqp://rome:a-password@host:5672//"])
def test_a_worker_without_Q_consumes_every_work_queue_and_not_the_dead_letters(tmp_path, broker):
    settings = load_settings({"ROME_DATA_DIR": str(tmp_path), "ROME_BROKER_URL": broker})
    app = create_app(settings)
    # What the worker's consumer reads from when -Q selects nothing.
    consumed = {queue.name for queue in app.amqp.queues.consume_from.values()}
    assert consumed == {queue.name for queue in topology(settings).work}
    assert len(consumed) == len(QUEUES)
    assert topology(settings).dead.name not in consumed


def test_beat_makes_the_folder_of_its_schedule(tmp_path):
    settings = load_settings({"ROME_DATA_DIR": str(tmp_path / "data")})
    app = create_app(settings)
    schedule = tmp_path / "data" / "beat" / "celerybeat-schedule"
    scheduler = FolderMakingScheduler(app=app, schedule_filename=str(schedule), lazy=False)
    try:
        assert schedule.parent.is_dir()
        assert set(scheduler.schedule) >= {"source-ap", "source-mc", "source-sos"}
    finally:
        scheduler.close()
