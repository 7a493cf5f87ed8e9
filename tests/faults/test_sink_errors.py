"""Fault 4: the sink raises for a while, then recovers.

The sink is the ``flaky`` handler (:mod:`tests.faults.handlers`): it raises ``RuntimeError``
while a flag file exists. A publisher sends 3,000 persistent events at 600/s; once the sink has
800 lines the flag is created for 5 s. The bridge must stay up, write nothing meanwhile (the
handler refuses every batch, and nothing of a refused batch may be acknowledged), and then, by
the sink's retry policy:

- ``sink.max_attempts: 0`` (retry forever): write the same batch again until the handler takes it.
  Counts: nothing lost, nothing unexpected; duplicates reported.
- ``sink.max_attempts: 3``: after three refusals, set the batch's events aside in the dead-letter
  file (reason: the handler's error) and only then acknowledge them; 200 events published once
  the handler works again all reach it. Counts: nothing lost; the only unexpected records are
  those dead-lettered events, each naming the failure.

Recovery: seconds from removing the flag to the sink's next line.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import TRANSPORTS
from tests.faults.checker import count_lines, read_records, record, tally
from tests.faults.harness import (FaultBroker, Processes, bridge_config, explain, finish, time_to_growth,
                                  wait_drained, wait_until)

pytestmark = pytest.mark.faults
COUNT, RATE, FAIL_AT, FAIL_SECONDS, AFTER = 3000, 600, 800, 5.0, 200


@pytest.mark.timeout(180)
@pytest.mark.parametrize("attempts", [0, 3], ids=["retry-forever", "dead-letter-after-3"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sink_errors_then_recovery(fault_broker: FaultBroker, procs: Processes, tmp_path: Path,
                                   transport: str, attempts: int) -> None:
    sink, fail = tmp_path / "handler-sink.jsonl", Path(procs.env["AMQ_BRIDGE_TEST_FAIL"])
    config = bridge_config(tmp_path / "bridge.yaml", fault_broker, transport,
                           sink={"type": "handler", "handler": "tests.faults.handlers:flaky",
                                 "max_attempts": attempts})
    dead = tmp_path / "bridge.dead.jsonl"
    bridge = procs.bridge(config)
    assert bridge.wait_for("subscribed to"), explain("bridge did not subscribe", bridge)
    publisher = procs.publisher(fault_broker, COUNT, rate=RATE)
    reached = wait_until(lambda: count_lines(sink) >= FAIL_AT, 30, alive=bridge)
    assert reached, explain(f"sink stuck at {count_lines(sink)} lines before the failure", bridge)
    offset = len(bridge.stderr)
    fail.touch()
    time.sleep(FAIL_SECONDS)
    during = count_lines(sink)
    alive_during = bridge.process.poll() is None
    fail.unlink()
    published = range(COUNT)
    if attempts:  # what was left may all have been set aside meanwhile: these come after the healing
        finish(publisher)
        procs.publish(fault_broker, AFTER, start=COUNT)
        published = range(COUNT + AFTER)
    recovery = time_to_growth(sink, during, 60, alive=bridge)
    finish(publisher)
    drained = wait_drained(published, [sink], [dead], timeout=60, alive=bridge)
    time.sleep(1.0)  # late redeliveries, to count them
    failures = bridge.stderr[offset:].count("RuntimeError")
    bridge.terminate()
    result = tally(published, [sink], [dead])
    scenario = "sink errors 5 s" + (f", dead-letter after {attempts}" if attempts else "")
    record(scenario, transport, result, recovery, handler_errors_logged=failures)
    message = explain(result, bridge, note=f"alive during failure={alive_during} recovery={recovery} "
                                           f"drained={drained} RuntimeError lines logged={failures}")
    assert alive_during, "the bridge exited while the sink failed\n" + message
    assert recovery is not None, message
    assert result.lost == 0, message
    if not attempts:
        assert result.unexpected == 0, message
        return
    assert result.dead_lettered > 0, "nothing was dead-lettered after the attempts ran out\n" + message
    assert result.torn == 0, message
    reasons = [str(r.get("reason")) for r in read_records(dead)[0]]
    assert len(reasons) == result.dead_lettered == result.unexpected, message
    assert all(f"sink failed {attempts} times" in r and "RuntimeError" in r for r in reasons), message
    healed = {r["data"]["seq"] for r in read_records(sink)[0] if r["data"]["seq"] >= COUNT}
    assert healed == set(range(COUNT, COUNT + AFTER)), "events sent after the sink healed were not delivered\n" + message


@pytest.mark.timeout(180)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_kill_9_while_the_sink_fails_loses_nothing(fault_broker: FaultBroker, procs: Processes, tmp_path: Path,
                                                   transport: str) -> None:
    """Events received ahead of a batch the sink refuses are never covered by an acknowledgement.

    Persistent events wait on the broker (more than prefetch, many batches of 100) while the
    handler refuses; it heals, takes a first batch or a few, and refuses again. Meanwhile the
    bridge holds the refused batch and (openwire) the batches received ahead of it, and
    acknowledges the batches written before. kill -9, the handler healed, a second bridge: every
    event reaches the handler. An acknowledgement that covered a received but unwritten event
    would lose it here.
    """
    sink, fail = tmp_path / "handler-sink.jsonl", Path(procs.env["AMQ_BRIDGE_TEST_FAIL"])
    config = bridge_config(tmp_path / "bridge.yaml", fault_broker, transport, batch_size=100,
                           sink={"type": "handler", "handler": "tests.faults.handlers:flaky", "max_attempts": 0})
    fail.touch()
    bridge = procs.bridge(config)
    assert bridge.wait_for("subscribed to"), explain("bridge did not subscribe", bridge)
    procs.publish(fault_broker, COUNT)
    fail.unlink()
    assert wait_until(lambda: count_lines(sink) >= 1, 30, 0.001, alive=bridge), explain("nothing written", bridge)
    fail.touch()
    time.sleep(1.5)  # the sink refuses; acknowledgements of what it took before go out meanwhile
    written = count_lines(sink)
    bridge.kill9()
    fail.unlink()
    assert written < COUNT, f"the sink took all {COUNT} events before it failed again: nothing was held"
    again = procs.bridge(config)
    drained = wait_drained(range(COUNT), [sink], [], timeout=60, alive=again)
    again.terminate()
    result = tally(range(COUNT), [sink], [])
    assert result.lost == 0, explain(result, bridge, again, note=f"drained={drained} written before kill={written}")
    assert result.unexpected == 0, explain(result, bridge, again)
