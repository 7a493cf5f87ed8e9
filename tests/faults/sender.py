"""A STOMP publisher for the fault tests that knows what the broker really took.

Every 1,000th SEND and the last one ask for a RECEIPT, and :meth:`StompSender.close` waits for
all of them: ActiveMQ answers a SEND's receipt once it has processed (and, for a persistent
message, stored) it, and a connection's frames are processed in order. So after ``close()``
returns, everything sent is on the broker, and a test can count it as published.

Run as ``python -m tests.faults.sender PORT NAMESPACE START COUNT [RATE]`` it sends generated
events ``START`` .. ``START+COUNT-1`` (with ``seq``; several such processes publish a backlog
fast), at ``RATE`` per second if given. The fault tests publish with it rather than with
``amq-bridge publish``, whose STOMP sends are unconfirmed (it exits 0 after waiting at most 5 s
for the DISCONNECT receipt), so that whatever is missing at the end is the bridge's doing.

Bodies are sent as BytesMessage (with ``content-length``) or, with ``as_bytes=False``, as
TextMessage (without).
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import threading
import time
from typing import Iterable

import stomp

from bridge.publish import sample_event
from tests.conftest import PASSWORD, USERNAME

RECEIPT_EVERY = 1000


class _Receipts(stomp.ConnectionListener):
    def __init__(self) -> None:
        self.received: set[str] = set()
        self.errors: list[str] = []
        self.changed = threading.Condition()

    def on_receipt(self, frame: stomp.utils.Frame) -> None:
        with self.changed:
            self.received.add(frame.headers.get("receipt-id", ""))
            self.changed.notify_all()

    def on_error(self, frame: stomp.utils.Frame) -> None:
        with self.changed:
            self.errors.append(frame.headers.get("message") or str(frame.body)[:200])
            self.changed.notify_all()


class StompSender:
    """One STOMP connection sending persistent messages to topic ``RTO.<namespace>``.

    Each message is sent when the next one is given (or at :meth:`close`), so the last one can
    carry a receipt.
    """

    def __init__(self, port: int, namespace: str, *, username: str = USERNAME, password: str = PASSWORD,
                 host: str = "127.0.0.1") -> None:
        self.topic = f"/topic/RTO.{namespace}"
        self._conn = stomp.Connection12([(host, port)], auto_content_length=False)
        self._receipts = _Receipts()
        self._conn.set_listener("receipts", self._receipts)
        self._conn.connect(username, password, wait=True)
        self._asked: list[str] = []
        self._held: tuple[bytes, dict[str, str]] | None = None
        self._count = itertools.count(1)

    def send(self, body: bytes, *, as_bytes: bool = True, **headers: str) -> None:
        """SEND one persistent message; ``headers`` become JMS string properties."""
        headers = {"persistent": "true", **headers}
        if as_bytes:
            headers["content-length"] = str(len(body))
        if self._held is not None:
            self._send(*self._held, receipt=False)
        self._held = (body, headers)

    def close(self, timeout: float = 120) -> None:
        """Send the held message with a receipt and wait for every receipt, then disconnect.

        Raises:
            AssertionError: The broker did not confirm everything within ``timeout`` seconds.
        """
        try:
            if self._held is not None:
                self._send(*self._held, receipt=True)
                self._held = None
            self._confirm(timeout)
        finally:
            self._conn.disconnect()

    def _send(self, body: bytes, headers: dict[str, str], receipt: bool) -> None:
        n = next(self._count)
        if receipt or n % RECEIPT_EVERY == 0:
            headers = {**headers, "receipt": f"r{n}"}
            self._asked.append(headers["receipt"])
        self._conn.send(self.topic, body, headers=headers)

    def _confirm(self, timeout: float) -> None:
        wanted = set(self._asked)
        with self._receipts.changed:
            self._receipts.changed.wait_for(lambda: wanted <= self._receipts.received or self._receipts.errors,
                                            timeout)
        missing = wanted - self._receipts.received
        assert not missing and not self._receipts.errors, (
            f"the broker did not confirm {len(missing)} of {len(wanted)} receipts within {timeout}s; "
            f"errors: {self._receipts.errors}")


def send_events(port: int, namespace: str, seqs: Iterable[int], *, rate: float | None = None,
                **credentials: str) -> None:
    """Send the generated events ``seqs`` (with ``seq``) over one connection, confirmed.

    Even seqs go as BytesMessage, odd ones as TextMessage. ``rate``: events per second (default:
    as fast as the broker takes them).
    """
    sender = StompSender(port, namespace, **credentials)
    started = time.monotonic()
    try:
        for n, seq in enumerate(seqs):
            if rate and (ahead := started + n / rate - time.monotonic()) > 0:
                time.sleep(ahead)
            sender.send(json.dumps(sample_event(seq, sequence=True), separators=(",", ":")).encode(),
                        as_bytes=seq % 2 == 0)
    finally:
        sender.close()


if __name__ == "__main__":  # python -m tests.faults.sender PORT NAMESPACE START COUNT [RATE]; credentials: env
    port, namespace, first, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    send_events(port, namespace, range(first, first + count), rate=float(sys.argv[5]) if len(sys.argv) > 5 else None,
                username=os.environ["AMQ_USERNAME"], password=os.environ["AMQ_PASSWORD"])
