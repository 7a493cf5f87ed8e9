"""Fault 7: a slow sink in front of a 100,000-event backlog.

100,000 persistent events are stored on the broker (two STOMP sender processes in parallel,
confirmed by receipts: :mod:`tests.faults.sender`) before the bridge starts. The bridge runs
with the ``slow`` handler (0.05 s more per batch of 100 while its flag file exists) for 10 s,
then the flag is removed and the backlog drains. The bridge's resident memory (VmRSS, which
for openwire includes the JVM) is sampled every 0.2 s from start to drained: the prefetch, not
the backlog, must bound it.

Counts: nothing lost, nothing unexpected; duplicates reported.
Memory: the largest sample must stay under ``RSS_BOUND_MB`` (measured on a 2-core Debian 12
VM, OpenJDK 17: see the figures next to it). Recovery: seconds from removing the flag to drained.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import TRANSPORTS
from tests.faults.checker import count_lines, record, tally
from tests.faults.harness import FaultBroker, Processes, RssSampler, bridge_config, explain, wait_drained

pytestmark = pytest.mark.faults
COUNT, PUBLISHERS, SLOW_SECONDS = 100_000, 2, 10.0
#: The largest VmRSS of a run (MB), over six runs each, times 1.5. openwire: 116-321 (the JVM's heap
#: grows during the fast drain as far as its default maximum, 1/4 of RAM, allows; 100-118 while the
#: sink is slow) -> 480. stomp: 29-30 -> 45. Measured on a 2-core, 24 GB Debian 12 VM, OpenJDK 17.
RSS_BOUND_MB = {"openwire": 480, "stomp": 45}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_slow_sink_with_100k_backlog(fault_broker: FaultBroker, procs: Processes, tmp_path: Path,
                                     transport: str) -> None:
    sink, slow = tmp_path / "handler-sink.jsonl", Path(procs.env["AMQ_BRIDGE_TEST_SLOW"])
    config = bridge_config(tmp_path / "bridge.yaml", fault_broker, transport, batch_size=100,  # the pace above
                           sink={"type": "handler", "handler": "tests.faults.handlers:slow"})
    dead = tmp_path / "bridge.dead.jsonl"
    started = time.monotonic()
    procs.publish(fault_broker, COUNT, processes=PUBLISHERS)
    publish_seconds = time.monotonic() - started
    slow.touch()
    bridge = procs.bridge(config)
    sampler = RssSampler(bridge.pid)
    try:
        time.sleep(SLOW_SECONDS)
        slow_delivered = count_lines(sink)
        slow_max_mb = sampler.max_mb
        slow.unlink()
        unflagged = time.monotonic()
        drained = wait_drained(range(COUNT), [sink], [dead], timeout=180, alive=bridge)
        recovery = time.monotonic() - unflagged if drained else None
    finally:
        sampler.stop()
    bridge.terminate()
    result = tally(range(COUNT), [sink], [dead])
    bound = RSS_BOUND_MB[transport]
    record("slow sink, 100k backlog", transport, result, recovery, max_rss_mb=round(sampler.max_mb, 1),
           slow_phase_max_rss_mb=round(slow_max_mb, 1), rss_bound_mb=bound, delivered_while_slow=slow_delivered,
           publish_s=round(publish_seconds, 1))
    message = explain(result, bridge, note=(
        f"max RSS {sampler.max_mb:.0f} MB (slow phase {slow_max_mb:.0f} MB, bound {bound} MB), "
        f"{slow_delivered} delivered while slow, drained={drained} in {recovery} s, publish {publish_seconds:.1f} s"))
    assert sampler.samples, message
    assert sampler.max_mb < bound, message
    assert result.lost == 0, message
    assert result.unexpected == 0, message
