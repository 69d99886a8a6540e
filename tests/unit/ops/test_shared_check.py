"""SharedCheck: one run per period for every thread, the others wait for it."""

import threading

import pytest

from rome.ops.shared_check import SharedCheck


def test_threads_share_one_run_and_a_stale_answer_is_checked_again():
    now = [0.0]
    runs = []
    release = threading.Event()

    def check():
        runs.append(now[0])
        release.wait(5)
        return f"answer {len(runs)}"

    shared = SharedCheck(check, every=5.0, clock=lambda: now[0])
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(shared.get())) for _ in range(8)]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(5)
    assert runs == [0.0] and answers == ["answer 1"] * 8
    now[0] = 4.9
    assert shared.get() == "answer 1"
    now[0] = 5.0
    assert shared.get() == "answer 2" and len(runs) == 2


def test_a_check_that_raises_lets_the_next_caller_run_it():
    calls = []

    def check():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("down")
        return "ok"

    shared = SharedCheck(check, every=60.0)
    with pytest.raises(RuntimeError):
        shared.get()
    assert shared.get() == "ok" and shared.get() == "ok" and len(calls) == 2
