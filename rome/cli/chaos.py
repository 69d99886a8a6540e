"""`rome chaos`: the pipeline under seeded random faults for N minutes, then checked exactly."""

from __future__ import annotations

import sys
from pathlib import Path

# Recorded real files the feed server serves during the run when none are named: the
# fixtures beside the code.
FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
DEFAULT_RECORDED = (("ap", "ap/20151103_national-co.json"),
                    ("nist", "nist/atkinson-2020-general.json"))
FORMATS = ("ap", "clarity", "nist")
# The ports this command's feed server may take (the first free one).
FEED_PORTS = range(20400, 20500)


def recorded_arg(value: str) -> tuple[str, Path]:
    fmt, _, path = value.partition(":")
    if fmt not in FORMATS or not path:
        raise ValueError(f"--recorded wants FORMAT:PATH with FORMAT one of "
                         f"{', '.join(FORMATS)}, got {value!r}")
    if not Path(path).exists():
        raise ValueError(f"--recorded {value}: no such file or folder")
    return fmt, Path(path)


def default_recorded() -> list[tuple[str, Path]]:
    return [(f, FIXTURES / p) for f, p in DEFAULT_RECORDED if (FIXTURES / p).exists()]


def free_port(ports=FEED_PORTS) -> int:
    import socket

    for port in ports:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return 0  # none free: any port the system gives


def cmd_chaos(args) -> int:
    from rome.ops.chaos import Chaos, report
    from rome.ops.rabbit_nodes import RabbitCluster

    if not RabbitCluster.available():
        print("rome chaos: RabbitMQ's rabbitmq-server is not installed", file=sys.stderr)
        return 2
    try:
        recorded = [recorded_arg(v) for v in args.recorded] or default_recorded()
    except ValueError as exc:
        print(f"rome chaos: {exc}", file=sys.stderr)
        return 2
    summary = Chaos(args.minutes, args.seed, recorded, out=sys.stdout,
                    port=free_port()).run()
    report(summary, sys.stdout)
    return 0 if summary.ok else 1


def register(commands) -> None:
    chaos = commands.add_parser(
        "chaos", help="run the pipeline on its own RabbitMQ cluster and PostgreSQL, polling a "
                      "feed server, under seeded random faults, then check the audit, a "
                      "fault-free replay of what was fetched and dead letters")
    chaos.add_argument("--minutes", type=float, default=10.0)
    chaos.add_argument("--seed", default="rome")
    chaos.add_argument("--recorded", action="append", default=[], metavar="FORMAT:PATH",
                       help="recorded feed files (or a folder) the feed server serves beside "
                            "the simulated night, a version every 10 s (default: two "
                            "fixtures)")
    chaos.set_defaults(func=cmd_chaos)
