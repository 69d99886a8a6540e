"""`rome broker migrate`: Rome's queues on RabbitMQ."""

from __future__ import annotations

import sys

from rome.settings import load_settings


def cmd_broker_migrate(args) -> int:
    settings = load_settings()
    if not settings.amqp_broker:
        print("rome broker migrate: ROME_BROKER_URL must name RabbitMQ (amqp://); the embedded "
              "broker keeps its classic queues", file=sys.stderr)
        return 2
    from rome.ops.seam import migrate_classic_queues

    kept = 0
    for moved in migrate_classic_queues(settings.broker_url, delete=args.delete):
        if not moved.found:
            print(f"{moved.source}: no classic queue")
            continue
        line = f"{moved.source} -> {moved.target}: moved {moved.messages} messages"
        if moved.deleted:
            line += "; classic queue deleted"
        if moved.kept_because:
            line += f"; kept: {moved.kept_because}"
            kept += 1
        print(line)
    return 1 if kept else 0


def register(commands) -> None:
    """Add `broker migrate` to the rome command."""
    broker = commands.add_parser("broker", help="manage Rome's queues on RabbitMQ")
    broker_commands = broker.add_subparsers(dest="broker_command", required=True)
    migrate = broker_commands.add_parser(
        "migrate", help="move what classic queues hold into the quorum queues that replace them")
    migrate.add_argument("--delete", action="store_true",
                         help="then delete each classic queue left empty and unconsumed")
    migrate.set_defaults(func=cmd_broker_migrate)
