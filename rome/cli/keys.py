"""`rome keys [show|rotate|retire KEY_ID]`: the keys that sign Rome's task messages."""

from __future__ import annotations

import sys

from rome.ops import message_keys
from rome.settings import load_settings


def cmd_keys(args) -> int:
    settings = load_settings()
    path = settings.message_keys_file
    command = args.keys_command or "show"
    if command == "rotate":
        ring, new = message_keys.rotate(path)
        print(f"{path}: {new} signs from now on; {len(ring.keys) - 1} older key(s) still verify. "
              "Running processes take it within a second. Retire the old ones once the "
              "messages they signed are consumed: rome keys retire KEY_ID")
    elif command == "retire":
        ring = message_keys.retire(path, args.key_id)
        print(f"{path}: {args.key_id} retired; messages it signed are refused from now on "
              f"(dead-lettered and recorded). {len(ring.keys)} key(s) left.")
    else:
        ring = message_keys.read(path)  # made on first use, as any worker would
        state = "signing on" if settings.message_signing else "ROME_MESSAGE_SIGNING=off"
        print(f"{path} ({state})")
        for number, (kid, _) in enumerate(ring.keys):
            print(f"{kid}  {'signs and verifies' if number == 0 else 'verifies'}")
    if not settings.message_signing:
        print("rome keys: ROME_MESSAGE_SIGNING=off: nothing signs or checks messages now",
              file=sys.stderr)
    return 0


def register(commands) -> None:
    """Add `keys` to the rome command."""
    keys = commands.add_parser(
        "keys", help="show, rotate or retire the keys that sign task messages",
        description="The keys that sign Rome's task messages (HMAC-SHA256), kept in "
                    "ROME_MESSAGE_KEYS (default $ROME_DATA_DIR/message-keys, made on first use). "
                    "Without a subcommand: show.")
    sub = keys.add_subparsers(dest="keys_command")
    sub.add_parser("show", help="list the key ids (never the secrets); the first signs")
    sub.add_parser("rotate", help="make a new key that signs; the old ones keep verifying")
    retire = sub.add_parser("retire", help="stop accepting messages signed with KEY_ID")
    retire.add_argument("key_id")
    keys.set_defaults(func=cmd_keys)
