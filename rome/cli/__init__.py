"""The `rome` command: migrate, demo, audit, inject, replay, poll, publish, feedserver, bench,
chaos, keys.

One module per command group, each with a `register(commands)`; this one builds the parser
and runs a command, stopping quietly when the reader of its output goes away.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import sys

from rome.cli import bench, broker, chaos, feeds, feedserver, keys, polling, publishing, store
from rome.cli import run as running
from rome.settings import SettingsError

GROUPS = (store, feeds, polling, publishing, feedserver, broker, running, bench, chaos, keys)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rome", description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return run_command(argv)
    except BrokenPipeError:
        if not reader_went_away(sys.stdout):
            raise  # a socket's broken pipe, say: a real error, with its traceback
        # Python's own recipe (library/signal, "Note on SIGPIPE"): what is still
        # buffered goes to devnull, or the flush at exit would fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        # 141, as a shell reports `cat` killed by SIGPIPE: under `set -o pipefail`,
        # `rome normalize f | head -1` then fails as the same pipe with cat does, and
        # 0 would claim every line was read.
        return 128 + signal.SIGPIPE


def run_command(argv: list[str] | None) -> int:
    """Run one rome command; flush its output, so a reader that left shows up here."""
    args = build_parser().parse_args(argv)  # argparse already stops quietly on a closed pipe
    try:
        code = args.func(args)
    except SettingsError as exc:
        print(f"rome: bad setting: {exc}", file=sys.stderr)
        code = 2
    sys.stdout.flush()
    return code


def reader_went_away(stream) -> bool:
    """Tell whether stream is a pipe (or socket) whose reading end is closed."""
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False  # not a file: pytest's capture, say
    poll = select.poll()
    poll.register(descriptor, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poll.poll(0))

