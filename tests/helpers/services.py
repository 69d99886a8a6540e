"""Where tests find the real services, what a missing one means, and the order tests run in."""

from __future__ import annotations

import os

import pytest

PG_URL = os.environ.get("ROME_TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/rome_test")
AMQP_URL = os.environ.get("ROME_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
IN_CI = bool(os.environ.get("CI"))


def fast_first(items) -> None:
    """Order collected tests: fast ones, then those that start processes, then the faults."""
    # Fast tests first, then the ones that start processes, the fault tests last: a
    # mistake shows in the first seconds, not after minutes of integration tests.
    def weight(item):
        return 2 if item.get_closest_marker("faults") else bool(item.get_closest_marker("slow"))

    items.sort(key=weight)


def missing_service(what: str, error: Exception):
    message = f"{what} is not reachable: {error}"
    if IN_CI:
        pytest.fail(f"{message} (CI is set, so this is a failure, not a skip)")
    pytest.skip(message)
