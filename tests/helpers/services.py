"""Where tests find the real services, what a missing one means, and the order tests run in."""

from __future__ import annotations

import os

import pytest

PG_URL = os.environ.get("ROME_TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/rome_test")
AMQP_URL = os.environ.get("ROME_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
IN_CI = bool(os.environ.get("CI"))
# Marker groups that take the machine's own services from whoever else uses them.
# The cluster tests are not among them: their three RabbitMQ nodes have ports,
# a cookie and folders of their own, and leave the machine's node alone.
DESTRUCTIVE = "ROME_TEST_DESTRUCTIVE"
DESTRUCTIVE_GROUPS = {
    "faults": "stop and restart this machine's PostgreSQL and RabbitMQ",
    "compose": "run containers on this machine's ports 8083, 5555 and 15672",
}


def fast_first(items) -> None:
    """Order collected tests: fast ones, then those that start processes, then the faults."""
    # Fast tests first, then the ones that start processes, the fault tests last: a
    # mistake shows in the first seconds, not after minutes of integration tests.
    def weight(item):
        last = item.get_closest_marker("faults") or item.get_closest_marker("chaos")
        return 2 if last else bool(item.get_closest_marker("slow"))

    items.sort(key=weight)


def missing_service(what: str, error: Exception):
    message = f"{what} is not reachable: {error}"
    if IN_CI:
        pytest.fail(f"{message} (CI is set, so this is a failure, not a skip)")
    pytest.skip(message)


def refuse_unasked_destruction(item) -> None:
    """Skip a destructive group's test unless DESTRUCTIVE=1 asks for it (under CI: fail)."""
    if os.environ.get(DESTRUCTIVE) == "1":
        return
    for marker, what in DESTRUCTIVE_GROUPS.items():
        if item.get_closest_marker(marker):
            message = f"the {marker} tests {what}: set {DESTRUCTIVE}=1 to run them"
            if os.environ.get("CI"):  # CI runs every group: .ci/run sets the variable
                pytest.fail(f"{message} (CI is set, so this is a failure, not a skip)")
            pytest.skip(message)
