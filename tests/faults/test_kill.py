"""Fault 1: the bridge is killed with SIGKILL mid-stream and restarted, three times in one run.

A publisher sends 6,000 persistent events at 1,500/s straight to the broker while the bridge
consumes. Each time the sink has grown by another 1,000 lines the bridge is killed (nothing in
hand gets acknowledged) and started again at once with the same config and connection id. The
last kill comes at about half of the events, so every restart finds events waiting.

Counts: nothing lost, nothing unexpected; duplicates (redelivered after a kill) reported.
Recovery: per restart, seconds from starting the new process to the sink's next line; the
largest of the three is reported.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import TRANSPORTS
from tests.faults.checker import count_lines, record, tally
from tests.faults.harness import (FaultBroker, Processes, bridge_config, explain, finish, paths_of,
                                  time_to_growth, wait_drained, wait_until)

pytestmark = pytest.mark.faults
COUNT, RATE, KILLS, STEP = 6000, 1500, 3, 1000


@pytest.mark.timeout(180)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_kill_9_three_times(fault_broker: FaultBroker, procs: Processes, tmp_path: Path, transport: str) -> None:
    config = bridge_config(tmp_path / "bridge.yaml", fault_broker, transport)
    sink, dead = paths_of(config)
    assert sink is not None
    bridge = procs.bridge(config)
    assert bridge.wait_for("subscribed to"), explain("bridge did not subscribe", bridge)
    publisher = procs.publisher(fault_broker, COUNT, rate=RATE)
    recoveries: list[float | None] = []
    for kill in range(1, KILLS + 1):
        grew = wait_until(lambda: count_lines(sink) >= kill * STEP, 30, alive=bridge)
        assert grew, explain(f"sink stuck at {count_lines(sink)} lines before kill {kill}", *procs.bridges)
        bridge.kill9()
        baseline = count_lines(sink)
        bridge = procs.bridge(config)
        recoveries.append(time_to_growth(sink, baseline, 60, alive=bridge))
    finish(publisher)
    drained = wait_drained(range(COUNT), [sink], [dead], timeout=60, alive=bridge)
    time.sleep(1.0)  # late redeliveries, to count them
    bridge.terminate()
    result = tally(range(COUNT), [sink], [dead])
    worst = None if None in recoveries else max(recoveries)  # type: ignore[type-var]
    record("kill -9 bridge x3", transport, result, worst, recoveries_s=[r and round(r, 2) for r in recoveries])
    message = explain(result, *procs.bridges, note=f"drained={drained} recoveries={recoveries}")
    assert None not in recoveries, message
    assert result.lost == 0, message
    assert result.unexpected == 0, message
