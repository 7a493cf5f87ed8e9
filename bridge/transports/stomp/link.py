"""One STOMP connection's state, kept by the listener stomp.py calls on its own threads."""

from __future__ import annotations

import logging
import ssl
import threading
from collections import deque
from time import monotonic
from typing import TYPE_CHECKING, Any, Iterable

import stomp
from stomp.exception import StompException
from stomp.protocol import Protocol12

from bridge.transports.stomp import reader

if TYPE_CHECKING:
    from bridge.transports.stomp.transport import StompTransport

log = logging.getLogger(__name__)

LOST = object()  # wakes a receive() that waits when the connection drops


class Link(stomp.ConnectionListener):
    """One STOMP connection: stomp.py's connection object, what it delivered, how it ended.

    The callbacks run on stomp.py's receiver (or heart-beat) thread. They only record state,
    queue frames and wake waiters, and never raise: an exception there closes the socket.
    """

    def __init__(self, owner: "StompTransport", conn: stomp.StompConnection12, endpoint: str) -> None:
        self.owner, self.conn, self.endpoint = owner, conn, endpoint
        # (headers, body) of each MESSAGE, then LOST; unbounded, as the broker sends at most
        # ``prefetch`` unacknowledged messages per subscription. ``arrived`` is set after an append.
        self.frames: deque[Any] = deque()
        self.arrived = threading.Event()
        self.first_arrival = 0.0  # monotonic() when a frame came to an empty ``frames``
        self.answered = threading.Event()  # CONNECTED, ERROR or end of socket while connecting
        self.gone = threading.Event()
        self.up = self.closing = False
        self.refusal: tuple[str, str] | None = None  # (first line, whole text) of the ERROR to CONNECT
        self.lost_reason: str | None = None
        self.subscriptions: dict[str, str] = {}  # subscription id -> "queue:NAME"
        self.receipts: dict[str, threading.Event] = {}
        self.receipt_errors: dict[str, tuple[str, str]] = {}  # receipt -> (first line, whole body)
        self.read_error: OSError | None = None  # why the socket's last read failed (a TLS alert...)
        self._lock = threading.Lock()
        self._note_read_errors(conn.transport)
        # MESSAGE frames come to on_messages, a read at a time (reader), or to on_message.
        reader.install(conn, self.on_messages)

    def _note_read_errors(self, transport: Any) -> None:
        """Keep the error of a failed socket read, which stomp.py drops before CONNECTED: a broker
        refusing our client certificate (TLS 1.3) says so only in an alert on the first read."""
        sock = transport.socket
        recv = sock.recv

        def recv_noting(*args: Any) -> Any:
            try:
                return recv(*args)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise  # no error: a non-blocking socket with nothing to read yet
            except OSError as exc:
                self.read_error = exc
                raise
        if isinstance(sock, ssl.SSLSocket):  # a plain socket's errors say nothing more
            sock.recv = recv_noting

    def on_connected(self, frame: Any) -> None:
        self.up = True
        self.answered.set()

    def on_error(self, frame: Any) -> None:
        body = bytes(frame.body or b"").decode("utf-8", "replace")
        text = (frame.headers.get("message") or body).strip()
        summary = text.splitlines()[0] if text else "ERROR frame without a message"
        receipt = frame.headers.get("receipt-id")
        if receipt in self.receipts:
            self.receipt_errors[receipt] = (summary, body)
            self.receipts[receipt].set()
        elif not self.up:
            self.refusal = (summary, f"{text}\n{body}".lower())
            self.answered.set()
        else:
            log.warning("STOMP broker %s sent an error: %s", self.endpoint, summary)

    def on_receipt(self, frame: Any) -> None:
        if (waiter := self.receipts.get(frame.headers.get("receipt-id"))) is not None:
            waiter.set()

    def on_message(self, frame: Any) -> None:
        self.on_messages(((frame.headers, frame.body),))

    def on_messages(self, items: Iterable[tuple[dict[str, str], bytes]]) -> None:
        if not self.frames:  # the batch_linger_ms of the next receive() counts from here
            self.first_arrival = monotonic()
        self.frames.extend(items)
        if not self.arrived.is_set():  # set already while receive() is busy: no lock taken then
            self.arrived.set()

    def on_disconnected(self) -> None:
        with self._lock:
            if self.gone.is_set():
                return
            silent = monotonic() - (getattr(self.conn, "received_heartbeat", None) or monotonic())
            if self.closing:
                self.lost_reason = "closed by the bridge"
            elif silent > (getattr(self.conn, "receive_sleep", 0) or float("inf")):
                self.lost_reason = f"no heart-beat from {self.endpoint} for {silent:.1f}s"
            else:
                self.lost_reason = f"connection to {self.endpoint} lost"
            was_up, self.up = self.up, False
            self.gone.set()
        self.answered.set()
        for waiter in list(self.receipts.values()):
            waiter.set()
        self.frames.append(LOST)
        self.arrived.set()
        if was_up:
            try:
                self.owner.hooks.on_disconnected(self.owner.name, self.lost_reason)
            except Exception:
                log.exception("on_disconnected hook failed")

    on_heartbeat_timeout = on_disconnected  # stomp.py reports both; the first one counts

    def shutdown(self, timeout: float) -> None:
        """DISCONNECT (so the ACKs before it are processed), close the socket, end both threads."""
        self.closing = True
        io_thread, heartbeat_thread = self.conn.transport.io_thread, self.conn.heartbeat_thread
        if self.up:
            try:
                # Protocol12.disconnect only sends the frame (stomp.py closes the socket on its
                # receipt); StompConnection12.disconnect would then wait without a time limit.
                Protocol12.disconnect(self.conn, receipt="disconnect")
                self.gone.wait(timeout)
            except (StompException, OSError) as exc:
                log.debug("DISCONNECT to %s failed: %s", self.endpoint, exc)
        if not self.gone.is_set():
            try:
                self.conn.transport.disconnect_socket()
            except Exception as exc:  # stomp.py's thread may race us to the socket; it ends closed
                log.debug("closing the socket to %s: %s", self.endpoint, exc)
        for thread in (io_thread, heartbeat_thread):
            if thread is not None and thread is not threading.current_thread():
                thread.join(2.0)
