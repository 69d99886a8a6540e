"""Each worker process keeps its start-up objects out of collections, and collects less often."""

from __future__ import annotations

import gc

from celery.signals import worker_process_init

from workers import signals


def test_a_pool_child_freezes_its_start_up_objects_and_collects_less_often():
    assert signals._collect_less_in_child in worker_process_init._live_receivers(None)
    thresholds = gc.get_threshold()
    try:
        signals._collect_less_in_child()
        assert gc.get_freeze_count() > 10_000  # the modules, Celery's and SQLAlchemy's state
        assert gc.get_threshold() == signals.GC_THRESHOLDS
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
