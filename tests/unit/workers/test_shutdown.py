"""A warm shutdown ends: pool processes that run no task are ended after a grace."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest
from celery.worker import state as worker_state

from workers import signals


class Process:
    """A pool process as billiard's pool lists it: a pid and is_alive()."""

    def __init__(self):
        self.popen = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        self.pid = self.popen.pid

    def is_alive(self) -> bool:
        return self.popen.poll() is None


@pytest.fixture
def processes():
    made = [Process(), Process()]
    yield made
    for process in made:
        process.popen.kill()
        process.popen.wait()


def worker_with(processes):
    return SimpleNamespace(pool=SimpleNamespace(_pool=SimpleNamespace(_pool=processes)))


def test_a_pool_process_running_no_task_is_ended_one_running_a_task_is_not(
        processes, monkeypatch):
    idle, busy = processes
    running = type("Request", (), {"worker_pid": busy.pid})()
    monkeypatch.setattr(worker_state, "active_requests", {running})
    assert signals._end_idle_pool_processes(worker_with(processes), grace=0) == [idle.pid]
    assert idle.popen.wait(5) == -9
    assert busy.is_alive()


def test_a_pool_without_processes_of_its_own_is_left_alone(monkeypatch):
    monkeypatch.setattr(worker_state, "active_requests", set())
    threads = SimpleNamespace(pool=SimpleNamespace(_pool=object()))  # -P threads
    assert signals._end_idle_pool_processes(threads, grace=0) == []


def test_only_a_warm_shutdown_starts_the_watch(monkeypatch):
    started = []
    monkeypatch.setattr(signals, "_workers", [worker_with([])])
    monkeypatch.setattr(signals.threading, "Thread",
                        lambda **kw: SimpleNamespace(start=lambda: started.append(kw["args"])))
    signals._end_idle_pool_processes_later(how="Cold")
    assert started == []
    signals._end_idle_pool_processes_later(how="Warm")
    assert len(started) == 1


def test_beats_stop_signal_stops_its_loop_and_leaves_the_schedule_open(monkeypatch):
    # Celery's handler closed the schedule inside the signal handler; a tick that ran on
    # read the closed shelf and beat exited 1 (docs/reliability.md).
    import threading

    from celery import platforms

    installed = {}
    monkeypatch.setattr(platforms.signals, "update", lambda **kw: installed.update(kw))
    closed = []
    service = SimpleNamespace(_is_shutdown=threading.Event(),
                              scheduler=SimpleNamespace(close=lambda: closed.append(1)))
    signals._stop_beat_between_ticks(sender=service)
    assert set(installed) == {"SIGTERM", "SIGINT"}
    with pytest.raises(SystemExit):
        installed["SIGTERM"](15, None)
    assert service._is_shutdown.is_set() and closed == []
