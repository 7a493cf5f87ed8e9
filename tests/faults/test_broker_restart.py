"""Fault 2: the broker is stopped and restarted mid-stream (same ports, same data directory).

3,000 persistent events are published first; the bridge drains them through the ``slow``
handler with batches of 20 (about 400 events/s), so the broker goes down with part of the
queue consumed, part in the bridge's prefetch and part still stored. The broker stays down
2 s and comes back from its KahaDB store; 1,000 more events are published after the restart.

Counts: nothing lost, nothing unexpected; duplicates reported.
Recovery: seconds from the restarted broker being ready to the sink's next line.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import TRANSPORTS
from tests.faults.checker import count_lines, record, tally
from tests.faults.harness import (FaultBroker, Processes, bridge_config, explain, time_to_growth, wait_drained,
                                  wait_until)

pytestmark = pytest.mark.faults
BEFORE, AFTER, STOP_AT, DOWN_SECONDS = 3000, 1000, 800, 2.0


@pytest.mark.timeout(180)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_broker_stopped_and_restarted(fault_broker: FaultBroker, procs: Processes, tmp_path: Path,
                                      transport: str) -> None:
    sink, slow = tmp_path / "handler-sink.jsonl", Path(procs.env["AMQ_BRIDGE_TEST_SLOW"])
    config = bridge_config(tmp_path / "bridge.yaml", fault_broker, transport, batch_size=20,
                           sink={"type": "handler", "handler": "tests.faults.handlers:slow"})
    dead = tmp_path / "bridge.dead.jsonl"
    procs.publish(fault_broker, BEFORE)
    slow.touch()
    bridge = procs.bridge(config)
    reached = wait_until(lambda: count_lines(sink) >= STOP_AT, 60, alive=bridge)
    assert reached, explain(f"sink stuck at {count_lines(sink)} lines", bridge)
    fault_broker.restart(DOWN_SECONDS)
    baseline = count_lines(sink)
    recovery = time_to_growth(sink, baseline, 60, alive=bridge)
    slow.unlink()
    alive_after = bridge.process.poll() is None
    if alive_after:
        procs.publish(fault_broker, AFTER, start=BEFORE)
    seqs = range(BEFORE + AFTER) if alive_after else range(BEFORE)
    drained = wait_drained(seqs, [sink], [dead], timeout=60, alive=bridge)
    time.sleep(1.0)  # late redeliveries, to count them
    bridge.terminate()
    result = tally(seqs, [sink], [dead])
    record("broker stop + restart", transport, result, recovery)
    message = explain(result, bridge, note=f"bridge alive after restart={alive_after} drained={drained} "
                                           f"recovery={recovery} (at restart the sink had {baseline} lines)")
    assert alive_after and recovery is not None, message
    assert result.lost == 0, message
    assert result.unexpected == 0, message
