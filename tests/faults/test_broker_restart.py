"""Fault 2: the broker is stopped and restarted mid-stream (same ports, same data directory).

3,000 persistent events are published first; the bridge drains them into a jsonl file through
a loopback proxy that passes at most 150 KB/s from the broker (about 300 events/s), so the
broker goes down with part of the queue consumed, part in the bridge's prefetch and part still
stored. The broker stays down 2 s and comes back from its KahaDB store; the cap is lifted once
the bridge delivers again, and 1,000 more events are published.

Counts: nothing lost, nothing unexpected, nothing duplicated (events written before the
restart whose acknowledgements the broker never got come again, and are recognised).
Recovery: seconds from the restarted broker being ready to the sink's next line.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import TRANSPORTS
from tests.faults.checker import count_lines, record, tally
from tests.faults.harness import (FaultBroker, Processes, bridge_config, explain, paths_of, time_to_growth,
                                  wait_drained, wait_until)
from tests.faults.proxy import TcpProxy

pytestmark = pytest.mark.faults
BEFORE, AFTER, STOP_AT, DOWN_SECONDS, RATE = 3000, 1000, 800, 2.0, 150_000


@pytest.mark.timeout(180)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_broker_stopped_and_restarted(fault_broker: FaultBroker, procs: Processes, tmp_path: Path,
                                      transport: str) -> None:
    upstream = fault_broker.openwire_port if transport == "openwire" else fault_broker.stomp_port
    procs.publish(fault_broker, BEFORE)
    with TcpProxy(("127.0.0.1", upstream), rate=RATE) as proxy:
        config = bridge_config(tmp_path / "bridge.yaml", fault_broker, transport, batch_size=20,
                               openwire_url=f"tcp://{proxy.address}", stomp_host=proxy.address)
        sink, dead = paths_of(config)
        assert sink is not None
        bridge = procs.bridge(config)
        reached = wait_until(lambda: count_lines(sink) >= STOP_AT, 60, alive=bridge)
        assert reached, explain(f"sink stuck at {count_lines(sink)} lines", bridge)
        before_restart = count_lines(sink)
        fault_broker.restart(DOWN_SECONDS)
        baseline = count_lines(sink)
        recovery = time_to_growth(sink, baseline, 60, alive=bridge)
        proxy.rate = None
        alive_after = bridge.process.poll() is None
        if alive_after:
            procs.publish(fault_broker, AFTER, start=BEFORE)
        seqs = range(BEFORE + AFTER) if alive_after else range(BEFORE)
        drained = wait_drained(seqs, [sink], [dead], timeout=60, alive=bridge)
        time.sleep(1.0)  # late redeliveries, to count them
        bridge.terminate()
    result = tally(seqs, [sink], [dead])
    record("broker stop + restart, into jsonl", transport, result, recovery)
    message = explain(result, bridge, note=f"bridge alive after restart={alive_after} drained={drained} "
                                           f"recovery={recovery} (sink lines: {before_restart} when the "
                                           f"restart began, {baseline} when the broker was back)")
    assert alive_after and recovery is not None, message
    assert baseline < BEFORE, "the restart came after the backlog was drained\n" + message
    assert result.lost == 0, message
    assert result.unexpected == 0, message
    assert result.duplicated == 0, message
