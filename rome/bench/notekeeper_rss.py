"""notekeeper's memory on a national AP answer: peak RSS of its claim-check path (issue 20).

``python -m rome.bench.notekeeper_rss stages --races-per-state 40,46`` renders
each national answer (rome/feeds/national.py: 40 races a state is 403,080
counts, 52.7 MB; 46 is 463,542, 60.6 MB) into a scratch archive and runs
notekeeper's path on it in a fresh process: the claim check read and parsed
(``snapshot_of``, validation included), cut into parts (``split``), each
part's wire JSON made, with the peak RSS (``VmHWM``) after each stage and
the parse's time; ``--runs 3`` repeats it (the median time is printed).

``python -m rome.bench.notekeeper_rss worker --races-per-state 40,40,46``
starts one real notekeeper worker (``celery -Q notekeeper -c 1``) on
ROME_DATABASE_URL and ROME_BROKER_URL, hands it each answer as the poller
does (archived, then a claim check), waits for its parts on caesar's queue
(nothing consumes them; the queues are purged after) and prints the peak RSS
of its processes, sampled every 0.25 s as ``rome bench national`` samples.

``--tree PATH`` measures the Rome checked out at PATH instead (its ``rome``
and ``workers`` first on PYTHONPATH; ``.`` is this one). ``stages`` takes it
more than once and runs the trees in turns: ``--tree OLD --tree . --runs 3``
gives before and after in one run, and the ratio of their median parse times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The measured process: only what every version of notekeeper's path has.
STAGES = r"""
import json, sys, time
from pathlib import Path
from types import SimpleNamespace

def peak():  # VmHWM: this process's own peak (ru_maxrss keeps the parent's across exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)

root, sha, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
from rome.feeds.split import split
from rome.store.archive import Archive, snapshot_of
import workers.tasks  # all a notekeeper process has imported
out = {"imports_mb": peak()}
row = SimpleNamespace(id=1, source_id="ap", kind="feed", format="ap", scope=None, sha256=sha,
                      size=size, version=None)
session = SimpleNamespace(get=lambda model, key: row)
started = time.perf_counter()
snapshot = snapshot_of(session, Archive(Path(root)), 1, "ap", max_ahead=None)
out["parse_s"] = round(time.perf_counter() - started, 3)
out["counts"] = len(snapshot.counts)
out["parse_mb"] = peak()
parts = split(snapshot)
out["parts"] = len(parts)
out["split_mb"] = peak()
out["largest_part_bytes"] = max(len(json.dumps([p.to_wire()], ensure_ascii=False))
                                for p in parts)
out["wire_mb"] = peak()
print(json.dumps(out))
"""


def _env(tree: Path | None) -> dict:
    """The environment of a measured process: tree's Rome (this one's if None) imported first."""
    env = dict(os.environ)
    tree = tree or Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    return env


def _render(archive_root: Path, races_per_state: int) -> tuple[str, int]:
    from rome.feeds.formats import render_feed
    from rome.feeds.national import national
    from rome.store.archive import Archive

    body = render_feed("ap", national(races_per_state=races_per_state))
    return Archive(archive_root).write(body), len(body)


def stages(sizes: list[int], runs: int, trees: list[Path | None]) -> list[dict]:
    """Each size's stages, runs times for each tree, the trees taking turns."""
    results = []
    with tempfile.TemporaryDirectory(prefix="rome-notekeeper-rss-") as scratch:
        for races_per_state in sizes:
            sha, size = _render(Path(scratch), races_per_state)
            each: dict[int, list[dict]] = {i: [] for i in range(len(trees))}
            for _ in range(runs):
                for i, tree in enumerate(trees):
                    done = subprocess.run([sys.executable, "-c", STAGES, scratch, sha, str(size)],
                                          env=_env(tree), capture_output=True, text=True,
                                          check=True, cwd=scratch)
                    each[i].append(json.loads(done.stdout.splitlines()[-1]))
                    sys.stderr.write(f"{size} B, {tree or 'this tree'}: {each[i][-1]}\n")
            per_tree = [{"tree": str(tree or "this tree"),
                         "parse_s_median": statistics.median(r["parse_s"] for r in each[i]),
                         "peak_mb_max": max(r["wire_mb"] for r in each[i]), "runs": each[i]}
                        for i, tree in enumerate(trees)]
            result = {"races_per_state": races_per_state, "file_bytes": size, "trees": per_tree}
            if len(trees) > 1:
                result["parse_s_median_last_over_first"] = round(
                    per_tree[-1]["parse_s_median"] / per_tree[0]["parse_s_median"], 2)
            results.append(result)
    return results


def worker(sizes: list[int], tree: Path | None) -> dict:
    from rome.bench.common import Workers, publish_all, purge_queues
    from rome.feeds.formats import render_feed
    from rome.feeds.inject import Message
    from rome.feeds.national import national
    from rome.ops import seam
    from rome.settings import load_settings
    from rome.store import db
    from rome.store.archive import Archive, record_fetch

    settings = load_settings(os.environ)
    database = db.prepare(settings.database_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    archive = Archive(settings.archive_dir)
    purge_queues()

    def waiting() -> int:
        app = seam.celery_app()
        with app.connection_for_write() as conn:
            queue = app.amqp.queues["caesar"].name  # on RabbitMQ, "caesar.quorum"
            return conn.default_channel.queue_declare(queue, passive=True).message_count

    workers = Workers(_env(tree), settings.data_dir / "notekeeper-rss.log",
                      specs=[("notekeeper", "notekeeper", 1)])
    workers.start()
    answers = []
    try:
        time.sleep(12)  # started and idle
        idle = workers.rss_by_name.get("notekeeper", 0.0)
        for races_per_state in sizes:
            body = render_feed("ap", national(races_per_state=races_per_state))
            with database.Session.begin() as session:
                archive_id = record_fetch(session, archive, source="ap", fmt="ap",
                                          url="https://api.ap.org/v2/elections/2024-11-05",
                                          status=200, body=body, fetched_at=time.time(),
                                          kind="feed")
            before = waiting()
            publish_all([Message("ap", str(archive_id), "archive", None, "ap")])
            last, still = -1, 0
            while still < 8:  # no new part for 2 s
                time.sleep(0.25)
                now = waiting()
                still = still + 1 if now == last and now > before else 0
                last = now
            answers.append({"file_bytes": len(body), "parts": last - before,
                            "peak_mb_so_far": round(workers.rss_by_name["notekeeper"], 1)})
            sys.stderr.write(f"{answers[-1]}\n")
    finally:
        workers.stop()
        purge_queues()
        database.engine.dispose()
    return {"idle_mb": round(idle, 1), "answers": answers}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rome.bench.notekeeper_rss",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["stages", "worker"])
    parser.add_argument("--races-per-state", default="40",
                        help="comma-separated sizes (40: 403,080 counts, 52.7 MB)")
    parser.add_argument("--runs", type=int, default=1, help="stages: fresh processes per size")
    parser.add_argument("--tree", type=Path, action="append",
                        help="measure the Rome checked out here ('.' for this one); stages "
                             "takes several, in turns, and the ratio of the last to the first")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.races_per_state.split(",")]
    trees = [None if str(t) == "." else t.resolve() for t in args.tree or [Path(".")]]
    if args.mode == "stages":
        result = stages(sizes, args.runs, trees)
    else:
        if len(trees) > 1:
            parser.error("worker measures one tree at a time")
        result = worker(sizes, trees[0])
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
