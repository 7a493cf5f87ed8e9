"""Faults on a durable topic subscription (``subscription.destination: topic:RTO.<namespace>``).

1. kill -9 mid-stream, three times: as tests/faults/test_kill.py, but the bridge consumes the
   feed topic through its durable subscription instead of a queue. A publisher sends 4,500
   persistent events at 1,500/s; each time the sink has grown by another 1,000 lines the bridge
   is killed and started again at once with the same connection id.
2. The broker restarts while the bridge is down: the bridge creates its durable subscription and
   stops; 1,000 persistent events are published, the broker is stopped and started again (same
   KahaDB store), 500 more are published, then the bridge starts and drains them all.

Counts: nothing lost, nothing unexpected; duplicates (redelivered after a kill) reported.
Recovery: kill -9: the slowest of the three restarts (new process to the sink's next line);
broker restart: from starting the bridge to its first event.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import TRANSPORTS
from tests.faults.checker import count_lines, record, tally
from tests.faults.harness import (FaultBroker, Processes, bridge_config, explain, finish, paths_of,
                                  time_to_growth, wait_drained, wait_until)

pytestmark = pytest.mark.faults
COUNT, RATE, KILLS, STEP = 4500, 1500, 3, 1000
BEFORE, AFTER = 1000, 500


def topic_config(path: Path, broker: FaultBroker, transport: str) -> Path:
    """A bridge on the feed topic through a durable subscription (named by its connection id)."""
    bridge_config(path, broker, transport)
    doc = yaml.safe_load(path.read_text())
    doc["subscription"] = {"destination": f"topic:RTO.{broker.namespace}", "connection_id": "fault-durable"}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.mark.timeout(180)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_kill_9_on_a_durable_topic(fault_broker: FaultBroker, procs: Processes, tmp_path: Path,
                                   transport: str) -> None:
    config = topic_config(tmp_path / "bridge.yaml", fault_broker, transport)
    sink, dead = paths_of(config)
    assert sink is not None
    bridge = procs.bridge(config)
    assert bridge.wait_for("subscribed to topic:.*[(]durable subscription"), explain("bridge did not subscribe", bridge)
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
    record("kill -9 bridge x3, durable topic", transport, result, worst,
           recoveries_s=[r and round(r, 2) for r in recoveries])
    message = explain(result, *procs.bridges, note=f"drained={drained} recoveries={recoveries}")
    assert None not in recoveries, message
    assert result.lost == 0, message
    assert result.unexpected == 0, message


@pytest.mark.timeout(180)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_durable_topic_across_a_broker_restart(fault_broker: FaultBroker, procs: Processes, tmp_path: Path,
                                               transport: str) -> None:
    config = topic_config(tmp_path / "bridge.yaml", fault_broker, transport)
    sink, dead = paths_of(config)
    assert sink is not None
    first = procs.bridge(config, "--idle-timeout", "1")  # creates the durable subscription, then stops
    assert first.process.wait(60) == 0, explain("first run failed", first)
    procs.publish(fault_broker, BEFORE)
    fault_broker.restart()
    procs.publish(fault_broker, AFTER, start=BEFORE)
    started = time.monotonic()
    bridge = procs.bridge(config, "--idle-timeout", "3")
    recovery = time_to_growth(sink, 0, 60, alive=bridge, since=started)
    drained = wait_drained(range(BEFORE + AFTER), [sink], [dead], timeout=60, alive=bridge)
    assert bridge.process.wait(60) == 0, explain("second run failed", bridge)
    result = tally(range(BEFORE + AFTER), [sink], [dead])
    record("durable topic, broker restart while down", transport, result, recovery)
    message = explain(result, first, bridge, note=f"drained={drained} recovery={recovery}")
    assert result.lost == 0, message
    assert result.unexpected == 0, message
    assert result.duplicated == 0, message
