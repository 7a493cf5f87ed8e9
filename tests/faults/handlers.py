"""Handler sinks for the fault tests (``sink: {type: handler, handler: "tests.faults.handlers:NAME"}``).

Both append one JSON line ``{"message_id", "data"}`` per event to the file named by
``$AMQ_BRIDGE_TEST_SINK`` and fsync it before returning, so a batch is durable exactly when the
call returns. They run inside the bridge process, which needs the repository root on PYTHONPATH.

- ``flaky``: raises ``RuntimeError`` (writing nothing) while the file ``$AMQ_BRIDGE_TEST_FAIL`` exists.
- ``slow``: sleeps 0.05 s per batch while the file ``$AMQ_BRIDGE_TEST_SLOW`` exists.
"""

from __future__ import annotations

import json
import os
import time
from typing import Sequence

from bridge.event import Event

SLOW_SECONDS = 0.05


def _flag(name: str) -> bool:
    path = os.environ.get(name)
    return bool(path) and os.path.exists(path)


def _append(events: Sequence[Event]) -> None:
    if not events:
        return
    data = "".join(json.dumps({"message_id": e.message_id, "data": e.data}, separators=(",", ":")) + "\n"
                   for e in events).encode()
    fd = os.open(os.environ["AMQ_BRIDGE_TEST_SINK"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def flaky(events: Sequence[Event]) -> None:
    """Write ``events`` durably, or fail (writing nothing) while the fail flag file exists."""
    if _flag("AMQ_BRIDGE_TEST_FAIL"):
        raise RuntimeError("test sink failing on purpose (AMQ_BRIDGE_TEST_FAIL exists)")
    _append(events)


def slow(events: Sequence[Event]) -> None:
    """Write ``events`` durably, taking 0.05 s more per batch while the slow flag file exists."""
    if _flag("AMQ_BRIDGE_TEST_SLOW"):
        time.sleep(SLOW_SECONDS)
    _append(events)
