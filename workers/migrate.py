"""Move what Rome's classic queues hold into the quorum queues that replace them.

`rome broker migrate` runs it. For each logical queue, and for the
dead-letter queue, it takes every message out of the classic queue (basic.get
with manual acks), publishes it unchanged into the quorum queue, and acks
the original only once RabbitMQ has confirmed the copy: a crash in between
moves a message twice, never loses one, and the ledger makes the duplicate
harmless. It may run while old workers still consume the classic queues:
each message then goes to one of them or is moved. With delete=True it
then deletes each classic queue that is empty and has no consumer, and its
exchange, so that a publisher still running old code fails loudly instead of
publishing where nobody reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from amqp.exceptions import NotFound, PreconditionFailed
from kombu import Connection, Queue

from workers.queues import QUEUES, Topology, classic_topology, quorum_topology

# The AMQP properties a moved message keeps, besides its body, headers,
# content type and encoding (persistence is set anew: quorum queues keep all).
KEPT_PROPERTIES = ("correlation_id", "reply_to", "message_id", "expiration", "timestamp",
                   "type", "app_id")


@dataclass
class Moved:
    """What happened to one classic queue."""

    source: str
    target: str
    messages: int = 0
    found: bool = True
    deleted: bool = False
    kept_because: str = ""


def pairs(classic: Topology, quorum: Topology) -> list[tuple[Queue, Queue]]:
    """Each classic queue with the quorum queue that replaces it, dead letters last."""
    old, new = classic.by_name(), quorum.by_name()
    return [*((old[name], new[name]) for name in QUEUES), (classic.dead, quorum.dead)]


def _exists(connection: Connection, queue: str) -> bool:
    channel = connection.channel()
    try:
        channel.queue_declare(queue, passive=True)
    except NotFound:  # the broker closed the channel
        return False
    channel.close()
    return True


def _move(connection: Connection, source: Queue, target: Queue, moved: Moved) -> None:
    channel = connection.channel()
    target(channel).declare()
    producer = connection.Producer(channel)
    # Dead letters go straight into the dead queue, not through its fanout
    # exchange: the dead-letter recorder's queue would get them too, and
    # record again what the worker recorded before the move.
    exchange, key = (("", target.name) if target.exchange.type == "fanout"
                     else (target.exchange, target.routing_key))
    while (message := channel.basic_get(source.name, no_ack=False)) is not None:
        properties = message.properties
        kept = {key: properties[key] for key in KEPT_PROPERTIES
                if properties.get(key) is not None}
        # With confirm_publish this returns once RabbitMQ has the copy.
        producer.publish(message.body, exchange=exchange, routing_key=key,
                         headers=message.headers, content_type=properties.get("content_type"),
                         content_encoding=properties.get("content_encoding"), delivery_mode=2,
                         retry=True, **kept)
        channel.basic_ack(message.delivery_tag)
        moved.messages += 1
    channel.close()


def _delete(connection: Connection, source: Queue, moved: Moved) -> None:
    channel = connection.channel()
    try:
        channel.queue_delete(source.name, if_unused=True, if_empty=True)
    except PreconditionFailed as exc:  # a consumer or a message arrived since
        moved.kept_because = exc.reply_text
        return
    try:
        channel.exchange_delete(source.exchange.name, if_unused=True)
    except PreconditionFailed as exc:  # another queue is bound to it: not ours to remove
        moved.kept_because = f"exchange kept: {exc.reply_text}"
    else:
        channel.close()
    moved.deleted = True


def migrate(url: str, delete: bool = False) -> list[Moved]:
    """Move every message from the classic queues at url into their quorum queues."""
    report = []
    with Connection(url, transport_options={"confirm_publish": True}) as connection:
        connection.ensure_connection(max_retries=3)
        for source, target in pairs(classic_topology(), quorum_topology()):
            moved = Moved(source.name, target.name, found=_exists(connection, source.name))
            if moved.found:
                _move(connection, source, target, moved)
                if delete:
                    _delete(connection, source, moved)
            report.append(moved)
    return report
