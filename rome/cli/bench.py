"""`rome bench [ingest|growth|scale|national|web|static|slow-clients|polling|probe]`: arguments,
dispatch."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

PROBES = ("history", "index", "fillfactor", "keys")


def _numbers(value: str) -> list[int]:
    return [int(x) for x in value.split(",") if x]


def _needs(*names: str) -> str | None:
    """Say what to install if a tool of the bench extra is missing (it is not part of Rome)."""
    missing = [name for name in names if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return (f"rome bench needs {' and '.join(missing)}: install the bench extra with"
            " `.venv/bin/pip install -e '.[bench]'`")


def _settings():
    from rome.settings import load_settings, prepare_data_dir

    settings = load_settings()
    prepare_data_dir(settings)
    return settings


def _ingest(args) -> dict:
    from rome.bench.ingest import run_ingest

    return run_ingest(
        _settings(), updates=args.updates, naive_updates=args.naive_updates, batch=args.batch,
        sweep=args.sweep, freshness_seconds=args.freshness_seconds,
        freshness_rate=args.freshness_rate, freshness_batch=args.freshness_batch,
        concurrency=args.concurrency, plot_dir=args.plots, wipe=args.wipe,
        signing_rounds=args.signing_rounds, signing_only=args.signing_only,
    )


def _growth(args) -> dict:
    from rome.bench.common import bench_env
    from rome.bench.growth import default_steps, run_growth

    return run_growth(
        _settings(), rows=args.rows, steps=args.steps or default_steps(args.rows),
        batch=args.batch, units=args.units, apply_batches=20, readers=args.readers,
        rounds=args.read_rounds, plot_dir=args.plots, wipe=args.wipe, env=bench_env(),
    )


def _scale(args) -> dict:
    from rome.bench.common import bench_env
    from rome.bench.scale import run_scale

    result = run_scale(_settings(), updates=args.updates, batch=args.batch,
                       scales=args.processes, runs=args.runs, wipe=args.wipe, env=bench_env())
    if args.plots is not None:
        from rome.bench.plots import plot_scale

        args.plots.mkdir(parents=True, exist_ok=True)
        plot_scale(result["scales"], args.plots / "scale.png", result["cores"])
    return result


def _national(args) -> dict:
    from rome.bench.common import bench_env
    from rome.bench.national import run_national

    return run_national(_settings(), sizes=args.races_per_state,
                        changed_versions=args.changed_versions, wipe=args.wipe, env=bench_env(),
                        clarity_counties=args.clarity_counties)


def _slow_clients(args) -> dict:
    from rome.bench.slow_clients import run_slow_clients

    # What follows `--` goes to gunicorn.
    args.gunicorn = args.gunicorn[1:] if args.gunicorn[:1] == ["--"] else args.gunicorn
    return run_slow_clients(args)


def _polling(args) -> dict:
    from rome.bench.common import bench_env
    from rome.bench.polling import run_polling

    return run_polling(
        _settings(), minutes=args.minutes, tick=args.tick, poll_interval=args.poll_interval,
        ap_rpm=args.ap_requests_per_minute, wipe=args.wipe, env=bench_env(), ap=args.ap,
        clarity=args.clarity, nist=args.nist, steps=args.steps,
    )


def _probe(args) -> dict:
    from rome.bench.probes import run_probe

    return run_probe(args.probe, args.url)


def cmd_bench(args) -> int:
    """Run the subcommand asked for (ingest without one) and print its figures."""
    command = args.bench_command or "ingest"
    needed = {"ingest": ["requests"], "growth": ["requests"], "scale": []}.get(command, [])
    if getattr(args, "plots", None):
        needed.append("matplotlib")
    if message := _needs(*needed):
        print(message, file=sys.stderr)
        return 2
    from rome.bench.common import BenchError

    try:
        if command == "web":
            from rome.bench.web import run_web

            return run_web(args)
        if command == "static":
            from rome.bench.static import run_static

            return run_static(args)
        run = {"ingest": _ingest, "growth": _growth, "scale": _scale, "national": _national,
               "slow-clients": _slow_clients, "probe": _probe, "polling": _polling}[command]
        result = run(args)
    except BenchError as exc:
        print(f"rome bench {command}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


def _add_ingest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--updates", type=int, default=200_000, help="updates for Rome's path")
    parser.add_argument("--naive-updates", type=int, default=3_000,
                        help="updates for the one-message-per-update baselines")
    parser.add_argument("--batch", type=int, default=2_000,
                        help="updates per message (a 2,000-row AP feed is about 430 KB)")
    parser.add_argument("--sweep", type=_numbers, default=[1, 10, 100, 1000, 2000, 4000],
                        help="batch sizes for the throughput plot, comma-separated")
    parser.add_argument("--freshness-seconds", type=float, default=30.0)
    parser.add_argument("--freshness-rate", type=float, default=1000.0,
                        help="updates per second offered while measuring freshness")
    parser.add_argument("--freshness-batch", type=int, default=50,
                        help="updates per message while measuring freshness")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument("--signing-rounds", type=int, default=3,
                        help="rounds of signed then unsigned workers comparing what signing "
                             "task messages costs (0: none)")
    parser.add_argument("--signing-only", action="store_true",
                        help="measure signed against unsigned only")
    _add_output_arguments(parser, "the two PNG plots")


def _add_output_arguments(parser: argparse.ArgumentParser, plots: str) -> None:
    parser.add_argument("--plots", type=Path, help=f"write {plots} into this folder")
    parser.add_argument("--wipe", action="store_true",
                        help="allow bench to erase the results it finds")


def register(commands) -> None:
    """Add `rome bench` and its subcommands to the top-level subparsers."""
    bench = commands.add_parser(
        "bench", help="measure Rome: ingest (the default), growth, scale, national, web, "
                      "static, slow-clients, polling",
        description="Measure Rome. Without a subcommand: `rome bench ingest`, with its options.",
    )
    _add_ingest_arguments(bench)
    bench.set_defaults(func=cmd_bench)
    benches = bench.add_subparsers(dest="bench_command", metavar="BENCHMARK")

    ingest = benches.add_parser(
        "ingest", help="ingest end to end against a COPY ceiling and one message per update")
    _add_ingest_arguments(ingest)

    growth = benches.add_parser(
        "growth", help="fill the history in steps and measure the apply rate and the read "
                       "endpoints at each (PostgreSQL)")
    growth.add_argument("--rows", type=int, default=10_000_000,
                        help="history rows to fill up to")
    growth.add_argument("--steps", type=_numbers,
                        help="history sizes to measure at (default: 0, 1/10, 1/4, 1/2, all)")
    growth.add_argument("--units", type=int, default=1_000,
                        help="reporting units per source in the pool the history fills from")
    growth.add_argument("--batch", type=int, default=2_000, help="counts per applied snapshot")
    growth.add_argument("--readers", type=int, default=4,
                        help="concurrent readers of each endpoint")
    growth.add_argument("--read-rounds", type=int, default=25,
                        help="requests per reader and endpoint at each step")
    _add_output_arguments(growth, "growth.png")

    scale = benches.add_parser(
        "scale", help="throughput with N caesar and N notekeeper processes, and the CPU each "
                      "party spends per update (PostgreSQL and RabbitMQ)")
    scale.add_argument("--processes", type=_numbers, default=[1, 2, 4],
                       help="each N to measure, comma-separated (default 1,2,4)")
    scale.add_argument("--runs", type=int, default=3,
                       help="runs per N (the median is reported)")
    scale.add_argument("--updates", type=int, default=200_000)
    scale.add_argument("--batch", type=int, default=2_000, help="updates per message")
    _add_output_arguments(scale, "scale.png")

    national = benches.add_parser(
        "national", help="national AP answers (110k and 400k counts) and a Clarity state of "
                         "159 county precinct files through the pipeline: fresh, then "
                         "1 %%-changed versions (PostgreSQL and RabbitMQ)")
    national.add_argument("--races-per-state", type=_numbers, default=[11, 40],
                          help="AP sizes, as races per state, comma-separated (11: 110,847 "
                               "counts; 40: 403,080; empty: no AP answer)")
    national.add_argument("--clarity-counties", type=int, default=159,
                          help="county files of the Clarity state (159, about 2,600 "
                               "precincts and 262,000 counts; 0: none)")
    national.add_argument("--changed-versions", type=int, default=3,
                          help="versions with 1 %% of the counts changed, after the fresh one")
    national.add_argument("--wipe", action="store_true",
                          help="allow bench to erase the results it finds")

    web = benches.add_parser(
        "web", help="/api/races under gunicorn while ingest runs, against /livez (needs wrk)")
    web.add_argument("--runs", type=int, default=3, help="pairs of wrk runs (default 3)")
    web.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    web.add_argument("--connections", type=int, default=4, help="wrk connections")
    web.add_argument("--threads", type=int, default=2, help="wrk threads")
    web.add_argument("--web-workers", type=int, default=2,
                     help="gunicorn workers (the demo and compose run 2)")
    web.add_argument("--rate", type=float, default=1000.0, help="updates/s to ingest")
    web.add_argument("--batch", type=int, default=50, help="updates per feed message")
    web.add_argument("--json", type=Path, help="also write the raw results here")

    static = benches.add_parser(
        "static", help="the published race JSON through nginx against the same JSON from "
                       "Flask, the publish lag under ingest, the files one race rewrites "
                       "(needs nginx and wrk)")
    static.add_argument("--races", type=int, default=550, help="races published (550)")
    static.add_argument("--connections", type=int, default=256, help="wrk connections")
    static.add_argument("--threads", type=int, default=2, help="wrk threads")
    static.add_argument("--seconds", type=int, default=8, help="length of each wrk run")
    static.add_argument("--port", type=int, default=20700,
                        help="nginx's port; gunicorn takes the next (default 20700)")
    static.add_argument("--rate", type=float, default=1000.0,
                        help="counts/s offered while measuring the lag")
    static.add_argument("--batch", type=int, default=50, help="counts per feed message")
    static.add_argument("--lag-seconds", type=int, default=30, help="how long to ingest")
    static.add_argument("--interval", type=float, default=2.0, help="ROME_PUBLISH_INTERVAL")
    static.add_argument("--scale-races", type=int, default=5000,
                        help="races for the files-written count (5000)")
    static.add_argument("--parts", default="serve,lag,files",
                        help="which parts to run, comma-separated (default all three)")
    static.add_argument("--keep", action="store_true", help="keep the temporary folder")

    slow = benches.add_parser(
        "slow-clients", help="/api/races under gunicorn while slow clients dribble headers",
        description="Everything after -- goes to gunicorn "
                    "(default: -c python:web.gunicorn_conf).")
    slow.add_argument("--slow", type=int, default=40, help="slow clients (default 40)")
    slow.add_argument("--interval", type=float, default=3.0,
                      help="seconds between a slow client's header lines (default 3)")
    slow.add_argument("--seconds", type=float, default=25.0, help="how long to measure")
    slow.add_argument("--timeout", type=float, default=120.0, help="per fetch")
    slow.add_argument("gunicorn", nargs=argparse.REMAINDER,
                      help="-- then gunicorn's own arguments")

    polling = benches.add_parser(
        "polling", help="a whole night polled from the feed server through the pipeline: "
                        "requests per minute, no-change answers, poll-to-visible latency",
        description="Without files: the simulated night (AP, a Clarity county, NIST), "
                    "--minutes long. With --ap/--clarity/--nist: those recorded files "
                    "through --steps versions, one every --tick seconds.")
    polling.add_argument("--minutes", type=float, default=10.0,
                         help="length of the simulated night (default 10)")
    polling.add_argument("--tick", type=float, default=2.0,
                         help="seconds per tick of the simulated night, or per version of "
                              "recorded files (default 2)")
    polling.add_argument("--poll-interval", type=float, default=5.0,
                         help="each source's interval in the sources file (default 5)")
    polling.add_argument("--ap-requests-per-minute", type=int, default=None,
                         help="AP's requests_per_minute (default: the sources file's, 12)")
    polling.add_argument("--ap", type=Path, nargs="+", default=[], metavar="FILE")
    polling.add_argument("--clarity", type=Path, nargs="+", default=[], metavar="PATH")
    polling.add_argument("--nist", type=Path, nargs="+", default=[], metavar="FILE")
    polling.add_argument("--steps", type=int, default=4,
                         help="versions of each recorded file (default 4)")
    polling.add_argument("--wipe", action="store_true",
                         help="allow bench to erase the results it finds")

    probe = benches.add_parser(
        "probe", help="what ingest and history reads cost on a database `rome bench growth` "
                      "filled (fillfactor TRUNCATEs it: give it a scratch one)")
    probe.add_argument("probe", choices=PROBES)
    probe.add_argument("url", help="the database's URL")
