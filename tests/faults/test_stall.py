"""Fault 3: the network between bridge and broker stalls: no bytes move, no socket closes.

The bridge reaches the broker through a loopback proxy (:class:`tests.faults.proxy.TcpProxy`)
with heart-beats / inactivity monitoring at 1 s. A publisher sends 4,000 persistent events at
500/s straight to the broker. Once the sink has 1,000 lines the proxy stops forwarding for 8 s,
then forwards again. The bridge must notice the silence during the stall (a disconnection,
heart-beat or inactivity line on stderr, or ``connected=no`` in its stats) and carry on after.

Counts: nothing lost, nothing unexpected, nothing duplicated (into jsonl).
Recovery: seconds from the proxy forwarding again to the sink's next line. ``noticed_s`` (in
the report): seconds from the stall to the first sign on stderr that the bridge saw it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.conftest import TRANSPORTS
from tests.faults.checker import count_lines, record, tally
from tests.faults.harness import (FaultBroker, Processes, bridge_config, explain, finish, paths_of,
                                  time_to_growth, wait_drained, wait_until)
from tests.faults.proxy import TcpProxy

pytestmark = pytest.mark.faults
COUNT, RATE, STALL_AT, STALL_SECONDS, HEARTBEAT_MS = 4000, 500, 1000, 8.0, 1000
NOTICED = re.compile(r"(?i)disconnect|connection lost|lost connection|heart-?beat|inactiv|reconnect|"
                     r"interrupt|connected=no")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_network_stall(fault_broker: FaultBroker, procs: Processes, tmp_path: Path, transport: str) -> None:
    upstream = fault_broker.openwire_port if transport == "openwire" else fault_broker.stomp_port
    with TcpProxy(("127.0.0.1", upstream)) as proxy:
        config = bridge_config(tmp_path / "bridge.yaml", fault_broker, transport,
                               openwire_url=f"tcp://{proxy.address}", stomp_host=proxy.address,
                               openwire={"heartbeat_ms": HEARTBEAT_MS}, stomp={"heartbeat_ms": HEARTBEAT_MS})
        sink, dead = paths_of(config)
        assert sink is not None
        bridge = procs.bridge(config)
        assert bridge.wait_for("subscribed to"), explain("bridge did not subscribe", bridge)
        publisher = procs.publisher(fault_broker, COUNT, rate=RATE)
        reached = wait_until(lambda: count_lines(sink) >= STALL_AT, 30, alive=bridge)
        assert reached, explain(f"sink stuck at {count_lines(sink)} lines before the stall", bridge)
        offset = len(bridge.stderr)
        proxy.pause()
        stalled = time.monotonic()
        noticed = None
        if bridge.wait_for(NOTICED.pattern, STALL_SECONDS, since=offset):
            noticed = time.monotonic() - stalled
        time.sleep(max(0.0, stalled + STALL_SECONDS - time.monotonic()))
        baseline = count_lines(sink)
        proxy.resume()
        recovery = time_to_growth(sink, baseline, 60, alive=bridge)
        finish(publisher)
        drained = wait_drained(range(COUNT), [sink], [dead], timeout=60, alive=bridge)
        time.sleep(1.0)  # late redeliveries, to count them
        bridge.terminate()
    result = tally(range(COUNT), [sink], [dead])
    record("network stall (proxy), into jsonl", transport, result, recovery,
           noticed_s=None if noticed is None else round(noticed, 2), stall_s=STALL_SECONDS)
    message = explain(result, bridge, note=f"noticed={noticed} recovery={recovery} drained={drained} "
                                           f"proxy connections={proxy.accepted}")
    assert noticed is not None, "the bridge did not notice an 8 s stall with 1 s heart-beats\n" + message
    assert recovery is not None, message
    assert result.lost == 0, message
    assert result.unexpected == 0, message
    assert result.duplicated == 0, message
