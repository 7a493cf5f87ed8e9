"""Fixtures of the fault tests: a persistent broker of each test's own, and its processes.

Every test gets a fresh broker (persistent, fixed ports, own data dir, the consumer queue
pre-created) and a :class:`~tests.faults.harness.Processes` that starts bridges and publishers
with the repository root on PYTHONPATH (for ``tests.faults.handlers``) and stops them at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.faults.harness import FaultBroker, Processes


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: fault injection against real brokers (kill -9, broker restart, network stall, "
                   "sink errors, bad messages, duplicate connection id, slow sink backlog, durable topic)")


@pytest.fixture
def fault_broker(tmp_path: Path, namespace: str) -> Iterator[FaultBroker]:
    """A persistent broker in a child process, restartable on the same ports and data."""
    broker = FaultBroker(tmp_path / "broker", namespace)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    """Bridge and publisher processes of this test; all are stopped when it ends."""
    processes = Processes(tmp_path, AMQ_BRIDGE_TEST_SINK=str(tmp_path / "handler-sink.jsonl"),
                          AMQ_BRIDGE_TEST_FAIL=str(tmp_path / "sink-fail.flag"),
                          AMQ_BRIDGE_TEST_SLOW=str(tmp_path / "sink-slow.flag"))
    try:
        yield processes
    finally:
        processes.stop_all()
