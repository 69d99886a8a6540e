"""Fire each source on wall-clock-aligned ticks, passing the tick number; keep beat's schedule."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from celery.beat import BeatLazyFunc, PersistentScheduler
from celery.schedules import schedstate, schedule

from rome.feeds.simulator import current_tick
from rome.feeds.sources_file import load_sources


class TickSchedule(schedule):
    """Due once per wall-clock slot of run_every seconds, at the slot's start.

    Aligning to the clock, not to beat's start time, makes two beat processes
    fire the same tick number, so their updates share ids and count once.
    """

    def is_due(self, last_run_at):
        interval = self.seconds
        now = self.now().timestamp()
        this_tick = current_tick(interval, now)
        due = this_tick > current_tick(interval, last_run_at.timestamp())
        return schedstate(due, (this_tick + 1) * interval - now)


def beat_schedule(interval: float, queues: dict[str, str]) -> dict:
    """Return one entry per source: the source task on that source's queue."""
    return {
        f"source-{source}": {
            "task": "rome.source.emit",
            "schedule": TickSchedule(timedelta(seconds=interval)),
            "args": (source,),
            # Evaluated by beat at send time: the tick the entry fires for.
            "kwargs": {"tick": BeatLazyFunc(current_tick, interval)},
            "options": {"queue": queue},
        }
        for source, queue in queues.items()
    }


# How often the archive's retention (ROME_ARCHIVE_RETENTION) is applied.
PRUNE_EVERY = 600.0


def poll_schedule(settings) -> dict:
    """One entry per source of ROME_SOURCES: its poll on the poll queue, every interval.

    A poll message expires after one interval: a worker busy behind a stalled
    endpoint drops the polls that came due meanwhile instead of running them
    late, one after another (and the lease skips a poll still running).
    """
    entries = {
        f"poll-{spec.id}": {
            "task": "rome.poll.run",
            "schedule": timedelta(seconds=spec.interval),
            "args": (spec.id,),
            "options": {"queue": "poll", "expires": spec.interval},
        }
        for spec in load_sources(settings.sources_file)
    }
    if settings.archive_retention_days or settings.archive_retention_bytes:
        entries["archive-prune"] = {"task": "rome.archive.prune",
                                    "schedule": timedelta(seconds=PRUNE_EVERY),
                                    "options": {"queue": "poll", "expires": PRUNE_EVERY}}
    return entries


class FolderMakingScheduler(PersistentScheduler):
    """Celery's default scheduler, making the folder its schedule file goes in."""

    def setup_schedule(self):
        Path(self.schedule_filename).parent.mkdir(parents=True, exist_ok=True)
        super().setup_schedule()
