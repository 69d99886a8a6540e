"""Declare Rome's queues: classic on the embedded broker, quorum queues on RabbitMQ.

Workers, beat, `rome inject` and `rome bench` all take their queues from here,
so every publisher declares them exactly as the workers do (RabbitMQ refuses a
second declaration of a queue with other arguments).

Every name below is a *logical* queue name: what `celery worker -Q` and the
routes use. On RabbitMQ each one is a quorum queue called `<name>.quorum` on a
topic exchange of the same name, with the logical name as its alias and
routing key. A queue's type cannot change in place, and Celery's native delayed
delivery (countdowns on quorum queues) needs a topic exchange where Rome's
classic queues had direct ones: new names let a deployment with classic queues
move over without losing what they hold (`rome broker migrate`).
"""

from __future__ import annotations

from dataclasses import dataclass

from kombu import Exchange, Queue

SOURCE_QUEUES = {source: f"elections_{source}" for source in ("ap", "mc", "sos")}
# "poll": the live sources' polls (ROME_SOURCES), apart from the pipeline, so a slow
# endpoint never holds notekeeper or caesar back.
POLL_QUEUE = "poll"
# "publish": baking the static files readers read (rome/publish/), apart, so a slow disk
# never holds caesar back.
QUEUES = [*SOURCE_QUEUES.values(), "notekeeper", "caesar", POLL_QUEUE, "publish"]

QUORUM_SUFFIX = ".quorum"
# How many times RabbitMQ delivers a message before it dead-letters it instead
# of requeueing it again: a message is delivered at most DELIVERY_LIMIT + 1
# times (x-delivery-count 0 to DELIVERY_LIMIT). RabbitMQ 3.10 has no default
# (without one a message that kills its worker comes back forever); 4.x
# defaults to 20. Returns count too: a worker that loses its connection or
# stops hands back its prefetched messages, each one delivery closer to the
# limit, so the limit leaves room for several of those.
DELIVERY_LIMIT = 10
DEAD_LETTER_DELIVERY_LIMIT = 1_000_000
DEAD_RECORD_QUEUE = "rome.dead.record" + QUORUM_SUFFIX


@dataclass(frozen=True)
class Topology:
    """The work queues (in QUEUES order) and where rejected messages go."""

    work: tuple[Queue, ...]
    dead_exchange: Exchange
    dead: Queue
    # A second queue on the dead-letter exchange, read by the dead-letter
    # recorder (workers/dead_letters.py): `dead` keeps every dead letter for
    # operators, this one lets each be recorded and acked.
    record: Queue | None = None

    def by_name(self) -> dict[str, Queue]:
        """Map each logical queue name to its queue."""
        return dict(zip(QUEUES, self.work, strict=True))


def classic_topology(dead_name: str = "rome.dead") -> Topology:
    """Durable classic queues on direct exchanges: the embedded broker, and Rome before quorum."""
    dead_exchange = Exchange(dead_name, type="fanout", durable=True)
    work = tuple(
        Queue(name, Exchange(name, type="direct", durable=True), routing_key=name, durable=True,
              queue_arguments={"x-dead-letter-exchange": dead_exchange.name})
        for name in QUEUES
    )
    return Topology(work, dead_exchange, Queue(dead_name, dead_exchange, durable=True))


def quorum_topology() -> Topology:
    """Quorum queues with a delivery limit and at-least-once dead-lettering."""
    dead_name = "rome.dead" + QUORUM_SUFFIX
    dead_exchange = Exchange(dead_name, type="fanout", durable=True)
    # A dead letter read back by hand and requeued must never be dropped: on
    # 4.x the default limit (20) would drop it, having nowhere to dead-letter
    # it to, and -1 (no limit on 4.x) drops it at once on 3.10. So: a limit
    # no inspection reaches.
    dead_arguments = {"x-queue-type": "quorum", "x-delivery-limit": DEAD_LETTER_DELIVERY_LIMIT}
    dead = Queue(dead_name, dead_exchange, durable=True, queue_arguments=dead_arguments)
    record = Queue(DEAD_RECORD_QUEUE, dead_exchange, durable=True,
                   queue_arguments=dead_arguments)
    arguments = {
        "x-queue-type": "quorum",
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": dead_name,
        # The queue keeps a dead-lettered message until rome.dead.quorum has
        # confirmed it; at-least-once needs reject-publish overflow (RabbitMQ
        # docs, quorum-queues#dead-lettering). No length limit is set, so
        # publishes are never refused for it.
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    work = tuple(
        Queue(name + QUORUM_SUFFIX, Exchange(name + QUORUM_SUFFIX, type="topic", durable=True),
              routing_key=name, durable=True, alias=name, queue_arguments=arguments)
        for name in QUEUES
    )
    return Topology(work, dead_exchange, dead, record)


def dead_letter_tasks(broker_url: str, queue_names: list[str]) -> dict[str, int]:
    """Count the dead letters in queue_names by the task each carries, taking none of them:
    they are read unacknowledged, and closing the channel gives every one back."""
    from collections import Counter

    from kombu import Connection

    tasks: Counter = Counter()
    with Connection(broker_url, connect_timeout=10) as conn:
        channel = conn.channel()
        for name in queue_names:
            while (message := channel.basic_get(name, no_ack=False)) is not None:
                tasks[(message.headers or {}).get("task", "?")] += 1
    return dict(tasks)
