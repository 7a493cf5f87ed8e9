"""Fault 8: shared-store master/slave failover (two brokers on one KahaDB directory).

The master holds the store's lock; the slave waits for it and opens its connectors only once it
took over. ``STREAM`` persistent events are published to the master first; the bridge, given
both brokers (``stomp.hosts`` / ``openwire.urls``), drains them into a jsonl sink, and once
``FAIL_AT`` lines are in the sink the master goes away:

* killed with -9 (defaults, and with ``dedupe_window: 0``);
* stopped gracefully (SIGTERM: the store closed cleanly);
* killed with -9 while the bridge is in the middle of a sink retry (the handler sink failing),
  so the slave is promoted while a batch is undelivered and the sink recovers afterwards.

Counts: nothing lost; then a plain consumer finds nothing left on the queue. Recovery: seconds
from the slave being ready to the sink's next line. ``AMQ_BRIDGE_FAILOVER_RUNS`` repeats every
scenario (``scripts/faults --failover-runs N``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import TRANSPORTS
from tests.faults.checker import count_lines, record, tally
from tests.faults.harness import (FaultBroker, Processes, bridge_config, drain_queue, explain, time_to_growth,
                                  wait_drained, wait_until)

pytestmark = pytest.mark.faults
STREAM = int(os.environ.get("AMQ_BRIDGE_FAILOVER_STREAM", "6000"))
FAIL_AT = STREAM // 3
RUNS = range(int(os.environ.get("AMQ_BRIDGE_FAILOVER_RUNS", "1")))


class Pair:
    """A master and a slave broker on one shared store, on ports of their own."""

    def __init__(self, workdir: Path, namespace: str) -> None:
        store = workdir / "shared-store"
        self.master = FaultBroker(workdir / "master", namespace, data_dir=store, shared_store=True)
        self.slave = FaultBroker(workdir / "slave", namespace, data_dir=store, shared_store=True)

    def start(self) -> None:
        self.master.start()
        self.slave.start(wait=False)  # blocks on the lock until the master is gone

    def stop(self) -> None:
        self.slave.stop()
        self.master.stop()


@pytest.fixture
def pair(tmp_path: Path, namespace: str) -> Iterator[Pair]:
    brokers = Pair(tmp_path / "brokers", namespace)
    brokers.start()
    try:
        yield brokers
    finally:
        brokers.stop()


def _config(tmp_path: Path, pair: Pair, transport: str, **overrides: object) -> Path:
    return bridge_config(tmp_path / "bridge.yaml", pair.master, transport,
                         openwire={"urls": [pair.master.openwire_url, pair.slave.openwire_url]},
                         stomp={"hosts": [pair.master.stomp_host, pair.slave.stomp_host]}, **overrides)


def _failover(pair: Pair, procs: Processes, tmp_path: Path, transport: str, scenario: str, config: Path,
              sink: Path, *, graceful: bool = False, during_retry: Path | None = None) -> None:
    dead = tmp_path / "bridge.dead.jsonl"
    procs.publish(pair.master, STREAM)
    bridge = procs.bridge(config)
    reached = wait_until(lambda: count_lines(sink) >= FAIL_AT, 60, alive=bridge)
    assert reached, explain(f"sink stuck at {count_lines(sink)} lines", bridge)
    if during_retry is not None:  # the sink starts failing; the master dies during the retries
        during_retry.touch()
        assert bridge.wait_for("sink write failed", 30), explain("the sink never failed", bridge)
    if graceful:
        pair.master.stop()
    else:
        pair.master.kill()
    pair.slave.wait_ready(60)
    promoted = time.monotonic()
    if during_retry is not None:
        time.sleep(1.0)  # the sink keeps failing a while on the slave's side too
        during_retry.unlink()
    recovery = time_to_growth(sink, count_lines(sink), 60, alive=bridge, since=promoted)
    drained = wait_drained(range(STREAM), [sink], [dead], timeout=90, alive=bridge)
    time.sleep(1.0)  # late redeliveries, to count them
    bridge.terminate()
    left = drain_queue(pair.slave, f"1.RTO.{pair.slave.namespace}")
    result = tally(range(STREAM), [sink], [dead])
    record(scenario, transport, result, recovery, left_on_queue=left)
    message = explain(result, bridge, note=f"drained={drained} recovery={recovery} left on the queue={left}")
    assert result.lost == 0, message
    assert result.unexpected == 0, message
    assert left == 0, message
    assert bridge.process.returncode == 0, message


@pytest.mark.timeout(240)
@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("dedupe", ["default", "off"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_master_killed(pair: Pair, procs: Processes, tmp_path: Path, transport: str, dedupe: str,
                       run: int) -> None:
    sink = tmp_path / "events.jsonl"
    extra = {"dedupe_window": 0} if dedupe == "off" else {}
    config = _config(tmp_path, pair, transport, sink={"type": "jsonl", "path": str(sink)}, **extra)
    scenario = "master/slave: master kill -9" + (", dedupe_window 0" if dedupe == "off" else "")
    _failover(pair, procs, tmp_path, transport, scenario, config, sink)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_master_stopped(pair: Pair, procs: Processes, tmp_path: Path, transport: str, run: int) -> None:
    sink = tmp_path / "events.jsonl"
    config = _config(tmp_path, pair, transport, sink={"type": "jsonl", "path": str(sink)})
    _failover(pair, procs, tmp_path, transport, "master/slave: master stopped", config, sink, graceful=True)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_slave_promoted_during_sink_retry(pair: Pair, procs: Processes, tmp_path: Path, transport: str,
                                          run: int) -> None:
    sink, failing = tmp_path / "handler-sink.jsonl", Path(procs.env["AMQ_BRIDGE_TEST_FAIL"])
    config = _config(tmp_path, pair, transport, batch_size=100,
                     sink={"type": "handler", "handler": "tests.faults.handlers:flaky", "max_attempts": 0})
    _failover(pair, procs, tmp_path, transport, "master/slave: promoted during a sink retry", config, sink,
              during_retry=failing)
