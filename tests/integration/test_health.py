"""/healthz against real workers: a broker login cannot cancel a consumer; a missing one shows."""

from __future__ import annotations

import sys
import time

import pytest

from rome.settings import load_settings
from tests.helpers import webapp
from tests.helpers.support import ALL_QUEUES, Processes, reset_queues, wait_for
from web import create_app
from web.registry import inspect_workers
from workers.factory import create_app as create_celery_app

pytestmark = [pytest.mark.slow, pytest.mark.services]


def test_workers_refuse_remote_control_and_healthz_notices_a_queue_nobody_consumes(
        tmp_path, pg_url, amqp_url, monkeypatch):
    webapp.clean_env(monkeypatch, tmp_path)
    reset_queues(amqp_url)
    env = {"ROME_DATA_DIR": str(tmp_path / "data"), "ROME_DATABASE_URL": pg_url,
           "ROME_BROKER_URL": amqp_url}
    processes = Processes(env, tmp_path)
    upgraded = processes.run([sys.executable, "-m", "rome", "db", "upgrade"])
    assert upgraded.returncode == 0, upgraded.stderr
    celery = create_celery_app(load_settings({**env, "ROME_ENV": "development"}))
    app = create_app({"TESTING": True, "DATABASE_URL": pg_url, "BROKER_URL": amqp_url,
                      "BROKER_TRANSPORT_OPTIONS": {}, "REGISTRY_REFRESH": 0.5,
                      "HEALTH_CHECK_EVERY": 1.0,
                      "REGISTRY": lambda: inspect_workers(celery, timeout=1.0)})
    client = app.test_client()
    try:
        # Every queue /healthz asks a consumer for: the pipeline's and the publish worker's.
        worker = processes.worker(queues=f"{ALL_QUEUES},publish")
        wait_for(lambda: client.get("/healthz").status_code == 200, 60,
                 what="/healthz to say 200 once the worker consumes every queue")
        # What anyone with the broker's password could do (issue 23): stop ingestion, or the
        # worker. Refused by the worker (workers/remote_control.py), answered with the error.
        for command, arguments in (("cancel_consumer", {"queue": "caesar"}),
                                   ("shutdown", {}), ("pool_restart", {})):
            [reply] = celery.control.broadcast(command, arguments=arguments, reply=True,
                                               timeout=5)
            [answer] = reply.values()
            assert "does not obey" in answer["error"], (command, reply)
        assert celery.control.ping(timeout=5)  # inspect commands still answer
        time.sleep(3)  # past a check period and a refresh of the list of workers
        assert worker.poll() is None
        assert client.get("/healthz").status_code == 200
        wait_for(lambda: processes.log("worker").count("control_command_refused") == 3, 10,
                 what="the worker's log to name each refused command")
        processes.stop("worker")
        # A worker consuming everything but caesar's queue: /healthz says so.
        processes.worker("partial", queues=",".join(q for q in ALL_QUEUES.split(",")
                                                    if q != "caesar") + ",publish")
        wait_for(lambda: client.get("/healthz").get_json()["workers"] == "unavailable", 30,
                 what="/healthz to notice caesar's queue has no consumer")
        assert client.get("/healthz").status_code == 503
    finally:
        processes.stop()
        webapp.dispose(app)
        celery.close()
