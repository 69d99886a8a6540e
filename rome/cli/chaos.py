"""`rome chaos`: the pipeline under seeded random faults for N minutes, then checked exactly."""

from __future__ import annotations

import sys
from pathlib import Path

# Recorded real files replayed during the run when none are named: the fixtures beside the code.
FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
DEFAULT_REPLAYS = (("chaosap", "ap", "ap/20151103_national-co.json"),
                   ("chaosnist", "nist", "nist/atkinson-2020-general.json"))


def _replay(value: str) -> tuple[str, str, list[Path]]:
    source, _, rest = value.partition(":")
    fmt, _, path = rest.partition(":")
    if not (source and fmt and path):
        raise ValueError(f"--replay wants SOURCE:FORMAT:PATH, got {value!r}")
    return source, fmt, [Path(path)]


def cmd_chaos(args) -> int:
    from rome.ops.chaos import Chaos, report
    from rome.ops.rabbit_nodes import RabbitCluster

    if not RabbitCluster.available():
        print("rome chaos: RabbitMQ's rabbitmq-server is not installed", file=sys.stderr)
        return 2
    try:
        replays = [_replay(v) for v in args.replay] or [
            (s, f, [FIXTURES / p]) for s, f, p in DEFAULT_REPLAYS if (FIXTURES / p).exists()]
    except ValueError as exc:
        print(f"rome chaos: {exc}", file=sys.stderr)
        return 2
    summary = Chaos(args.minutes, args.seed, replays, out=sys.stdout).run()
    report(summary, sys.stdout)
    return 0 if summary.ok else 1


def register(commands) -> None:
    chaos = commands.add_parser(
        "chaos", help="run the pipeline on its own RabbitMQ cluster and PostgreSQL under seeded "
                      "random faults, then check the audit, a fault-free replay and dead letters")
    chaos.add_argument("--minutes", type=float, default=10.0)
    chaos.add_argument("--seed", default="rome")
    chaos.add_argument("--replay", action="append", default=[], metavar="SOURCE:FORMAT:PATH",
                       help="recorded files to publish again and again (default: two fixtures)")
    chaos.set_defaults(func=cmd_chaos)
