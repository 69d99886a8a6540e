"""Ping one worker node and close every broker connection properly: compose's healthcheck.

    python -m workers.ping caesar@$(hostname)      # exit 0 once that node answers

It asks what `celery inspect ping -d NODE` asks. The difference is the end: Celery's
command leaves both of its connections (one to wait for the reply, one to publish) in its
pools, and the process exits with them open. RabbitMQ sees the socket drop ("client
unexpectedly closed TCP connection") while it is still tearing the channels down, and
now and then logs a supervisor `shutdown_error` (noproc or shutdown) at error level
(rabbitmq-server #1552, #3899). One check per worker every 30 s made that line a matter
of time. Here no connection is pooled, so each one ends with AMQP's close handshake as
soon as it has been used.
"""

from __future__ import annotations

import argparse
import sys

from workers import app


def ping(node: str, timeout: float) -> bool:
    """Return whether node answered within timeout, having closed every connection used."""
    # Without a pool, Celery closes each connection when it is released, not at exit.
    app.conf.broker_pool_limit = 0
    replies = app.control.ping(destination=[node], timeout=timeout)
    return any(node in reply for reply in replies or [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.ping", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("node", help="the worker's node name, as given with celery -n")
    parser.add_argument("-t", "--timeout", type=float, default=10.0,
                        help="seconds to wait for its answer (default 10)")
    args = parser.parse_args(argv)
    if ping(args.node, args.timeout):
        print(f"{args.node}: pong")
        return 0
    print(f"{args.node}: no answer within {args.timeout:g} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
