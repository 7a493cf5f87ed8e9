"""Fault 1: the bridge is killed with SIGKILL mid-stream and restarted, three times in one run.

A publisher sends 6,000 persistent events at 1,500/s straight to the broker while the bridge
consumes. Each time the sink has grown by another 1,000 events the bridge is killed (nothing in
hand gets acknowledged) and started again at once with the same config and connection id. The
last kill comes at about half of the events, so every restart finds events waiting.

Sinks: jsonl, sqlite, postgres, and jsonl with ``workers: 2`` (there one worker is killed each
time, alternately, and the supervisor restarts it; the broker hands its unacknowledged events to
the other worker).

Counts: nothing lost, nothing unexpected, nothing duplicated (the restarted bridge seeds its
de-duplication window from the sink, the dead-letter file and the other worker's files), and
with workers no event in both workers' files. Recovery: per restart, seconds from starting the
new process to the sink's next event (workers: from the kill to the restarted worker's
subscription); the largest of the three is reported, with the slowest
seeding of the window the bridges logged (``seed_s``).
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import TRANSPORTS
from tests.faults.checker import read_records, record, tally
from tests.faults.harness import (BridgeProcess, FaultBroker, Processes, SinkView, bridge_config, explain, finish,
                                  wait_drained, wait_until)

pytestmark = pytest.mark.faults
COUNT, RATE, KILLS, STEP = 6000, 1500, 3, 1000
SINKS = ["jsonl", "sqlite", "postgres", "jsonl-workers-2"]
SEEDED = re.compile(r"de-duplication window: \d+ message id\(s\) of earlier deliveries read in ([\d.]+) s")


def workers_of(supervisor: BridgeProcess) -> list[int]:
    """The pids of a supervisor's worker processes."""
    try:
        return [int(p) for p in Path(f"/proc/{supervisor.pid}/task/{supervisor.pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", SINKS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_kill_9_three_times(fault_broker: FaultBroker, procs: Processes, tmp_path: Path, transport: str,
                            kind: str, request: pytest.FixtureRequest, namespace: str) -> None:
    workers = 2 if kind.endswith("workers-2") else 1
    base = kind.split("-")[0]
    if base == "postgres":
        server = request.getfixturevalue("pg")
        procs.env["AMQ_TEST_PG_URL"] = server.url
        view = SinkView("postgres", url=server.url, table=f"k_{namespace}")
    else:
        view = SinkView(base, path=tmp_path / ("events.db" if base == "sqlite" else "events.jsonl"), workers=workers)
    config = bridge_config(tmp_path / "bridge.yaml", fault_broker, transport, sink=view.sink(), workers=workers)
    dead = tmp_path / "bridge.dead.jsonl"
    deads = [dead.with_name(f"bridge.dead-{i}.jsonl") for i in (1, 2)] if workers > 1 else [dead]
    bridge = procs.bridge(config)
    assert bridge.wait_for("subscribed to"), explain("bridge did not subscribe", bridge)
    if workers > 1:
        assert wait_until(lambda: bridge.stderr.count("subscribed to") >= workers, 60), explain("workers", bridge)
    publisher = procs.publisher(fault_broker, COUNT, rate=RATE)
    recoveries: list[float | None] = []
    for kill in range(1, KILLS + 1):
        grew = wait_until(lambda: view.count() >= kill * STEP, 30, alive=bridge)
        assert grew, explain(f"sink stuck at {view.count()} events before kill {kill}", *procs.bridges)
        if workers > 1:
            pids = workers_of(bridge)
            assert len(pids) == workers, explain(f"workers running: {pids}", bridge)
            subscriptions = bridge.stderr.count("subscribed to")
            os.kill(pids[(kill - 1) % workers], signal.SIGKILL)
            started = time.monotonic()
            back = wait_until(lambda: bridge.stderr.count("subscribed to") > subscriptions, 60, 0.02, alive=bridge)
            recoveries.append(time.monotonic() - started if back else None)
            continue
        bridge.kill9()
        bridge = procs.bridge(config)
        baseline = view.count()
        grew = wait_until(lambda: view.count() > baseline, 60, 0.02, alive=bridge)
        recoveries.append(time.monotonic() - bridge.started if grew else None)
    finish(publisher)
    drained = wait_drained(range(COUNT), [view], deads, timeout=60, alive=bridge)
    time.sleep(1.0)  # late redeliveries, to count them
    bridge.terminate()
    result = tally(range(COUNT), [view], deads)
    seeded = [float(s) for b in procs.bridges for s in SEEDED.findall(b.stderr)]
    worst = None if None in recoveries else max(recoveries)  # type: ignore[type-var]
    scenario = "kill -9 bridge x3" + (f" into {base}" if workers == 1 else f" into {base}, {workers} workers (one killed)")
    record(scenario, transport, result, worst, recoveries_s=[r and round(r, 2) for r in recoveries],
           seed_s=max(seeded, default=None))
    message = explain(result, *procs.bridges, note=f"drained={drained} recoveries={recoveries}")
    assert None not in recoveries, message
    assert result.lost == 0, message
    assert result.unexpected == 0, message
    assert result.duplicated == 0, message
    if workers > 1:
        per_file = [{r["message_id"] for r in read_records(p)[0]} for p in view.files]
        assert not per_file[0] & per_file[1], f"in both workers' files: {sorted(per_file[0] & per_file[1])[:10]}"
