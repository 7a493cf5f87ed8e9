"""Fault 6: a second bridge starts with the connection id of a running one.

The broker refuses the second connection. The second bridge must neither exit nor consume: it
waits and retries with backoff, saying on stderr which id is taken. A publisher sends 3,000
persistent events at 600/s; once the first bridge's sink has 1,000 lines it gets SIGTERM (a
graceful stop), and the second must take over and drain the rest. Each bridge has its own sink
file; the two together are counted.

Counts: nothing lost, nothing unexpected; duplicates reported.
Recovery: seconds from SIGTERM to the first bridge to the second's first sink line.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import TRANSPORTS
from tests.faults.checker import count_lines, record, tally
from tests.faults.harness import (FaultBroker, Processes, bridge_config, explain, finish, time_to_growth,
                                  wait_drained, wait_until)

pytestmark = pytest.mark.faults
COUNT, RATE, HANDOVER_AT, CONNECTION_ID = 3000, 600, 1000, "shared-id"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_second_bridge_with_same_id_waits_then_takes_over(fault_broker: FaultBroker, procs: Processes,
                                                          tmp_path: Path, transport: str) -> None:
    sinks = [tmp_path / "first.events.jsonl", tmp_path / "second.events.jsonl"]
    configs = [bridge_config(tmp_path / f"{name}.yaml", fault_broker, transport, connection_id=CONNECTION_ID,
                             sink={"type": "jsonl", "path": str(sink)})
               for name, sink in zip(("first", "second"), sinks)]
    deads = [tmp_path / "first.dead.jsonl", tmp_path / "second.dead.jsonl"]
    first = procs.bridge(configs[0], name="first")
    assert first.wait_for("subscribed to"), explain("first bridge did not subscribe", first)
    publisher = procs.publisher(fault_broker, COUNT, rate=RATE)
    second = procs.bridge(configs[1], name="second")
    # The one line naming the id, e.g. "connection id 'shared-id' is already connected ...; retrying in ...".
    named = second.wait_for(rf"'{CONNECTION_ID}'.*already connected|already connected.*'{CONNECTION_ID}'", 30)
    reached = wait_until(lambda: count_lines(sinks[0]) >= HANDOVER_AT, 30, alive=first)
    second_waiting = second.process.poll() is None
    before_handover = count_lines(sinks[1])
    stopping = time.monotonic()
    first_status = first.terminate()
    recovery = time_to_growth(sinks[1], before_handover, 60, alive=second, since=stopping) if second_waiting else None
    finish(publisher)
    drained = wait_drained(range(COUNT), sinks, deads, timeout=60, alive=second)
    time.sleep(1.0)  # late redeliveries, to count them
    second.terminate()
    result = tally(range(COUNT), sinks, deads)
    record("duplicate connection id, handover", transport, result, recovery,
           second_before_handover=before_handover, first_exit=first_status)
    message = explain(result, first, second, note=(
        f"id named on stderr={named} first reached {HANDOVER_AT}={reached} second still waiting={second_waiting} "
        f"second's sink before handover={before_handover} first exit={first_status} recovery={recovery} "
        f"drained={drained}"))
    assert named and second_waiting, message
    assert before_handover == 0, "the second bridge consumed while the first held the id\n" + message
    assert recovery is not None, message
    assert result.lost == 0, message
    assert result.unexpected == 0, message
