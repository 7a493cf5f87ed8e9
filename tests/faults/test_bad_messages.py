"""Fault 5: every kind of bad message, mixed into a stream of good events.

600 good persistent events go to topic ``RTO.<namespace>`` over STOMP (alternately as
BytesMessage, with ``content-length``, and as TextMessage, without; confirmed by receipts, see
:mod:`tests.faults.sender`), with one bad message of each kind below in between, and one JMS
ObjectMessage sent by a JPype child process (:mod:`tests.faults.send_object`). The bridge runs
with ``max_message_bytes: 1024``. Over STOMP, ActiveMQ delivers the ObjectMessage as a frame
with an empty body, so it is set aside as "empty body" there (openwire: "ObjectMessage refused").

Every bad message carries a ``faultkind`` header (a JMS string property) naming its kind. Each
must be in the dead-letter file exactly once and never in the sink; every good event must be
in the sink.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bridge.publish import sample_event
from tests.conftest import TRANSPORTS
from tests.faults.checker import KIND_HEADER, record, tally
from tests.faults.harness import FaultBroker, Processes, bridge_config, explain, paths_of, wait_drained
from tests.faults.sender import StompSender

pytestmark = pytest.mark.faults
GOOD, MAX_BYTES = 600, 1024

#: kind -> (body, sent as a BytesMessage); the ObjectMessage is sent separately.
BAD: dict[str, tuple[bytes, bool]] = {
    "malformed_json_text": (b'{"md5": "abc", "seq": ', False),
    "malformed_json_bytes": (b'{"md5": ["abc", }', True),
    "invalid_utf8": (b'{"md5": "\xc3\x28\xff"}', True),
    "bytes_not_json": (b"\x01\x02 plain words, not json", True),
    "empty_bytes": (b"", True),
    "empty_text": (b"", False),
    "oversized": (json.dumps({"pad": "x" * 1990}, separators=(",", ":")).encode(), True),
    "json_array": (b"[1,2]", False),
    "json_string": (b'"x"', False),
    "json_number": (b"42", True),
    "json_null": (b"null", False),
}
OBJECT_KIND = "object_message"


def _send_stream(broker: FaultBroker, seqs: range, kinds: list[str]) -> None:
    """Good events ``seqs`` with the bad ``kinds`` spread evenly among them, confirmed by the broker."""
    every = max(1, len(seqs) // (len(kinds) + 1))
    sender = StompSender(broker.stomp_port, broker.namespace)
    try:
        pending = list(kinds)
        for n, seq in enumerate(seqs):
            body = json.dumps(sample_event(seq, sequence=True), separators=(",", ":")).encode()
            sender.send(body, as_bytes=seq % 2 == 0)
            if pending and n % every == every - 1:
                kind = pending.pop(0)
                sender.send(BAD[kind][0], as_bytes=BAD[kind][1], **{KIND_HEADER: kind})
        for kind in pending:
            sender.send(BAD[kind][0], as_bytes=BAD[kind][1], **{KIND_HEADER: kind})
    finally:
        sender.close()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bad_messages_are_dead_lettered_once(fault_broker: FaultBroker, procs: Processes, tmp_path: Path,
                                             transport: str) -> None:
    config = bridge_config(tmp_path / "bridge.yaml", fault_broker, transport, max_message_bytes=MAX_BYTES)
    sink, dead = paths_of(config)
    assert sink is not None and dead is not None
    bridge = procs.bridge(config)
    assert bridge.wait_for("subscribed to"), explain("bridge did not subscribe", bridge)
    kinds = list(BAD)
    half = len(kinds) // 2
    _send_stream(fault_broker, range(0, GOOD // 2), kinds[:half])
    procs.run("-m", "tests.faults.send_object", fault_broker.openwire_url, f"RTO.{fault_broker.namespace}",
              OBJECT_KIND)
    _send_stream(fault_broker, range(GOOD // 2, GOOD), kinds[half:])
    all_kinds = (*kinds, OBJECT_KIND)
    drained = wait_drained(range(GOOD), [sink], [dead], all_kinds, timeout=60, alive=bridge)
    time.sleep(1.0)  # a second copy of anything would show up now
    bridge.terminate()
    result = tally(range(GOOD), [sink], [dead], all_kinds)
    record("bad messages mixed in", transport, result, None, bad_kinds=len(all_kinds))
    per_kind = {kind: result.found[("kind", kind)] for kind in all_kinds}
    message = explain(result, bridge, note=f"drained={drained} dead-letter copies per kind: {per_kind}")
    assert all(n == 1 for n in per_kind.values()), message
    assert result.lost == 0, message
    assert result.unexpected == 0, message
