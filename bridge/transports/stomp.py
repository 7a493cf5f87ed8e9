"""STOMP transport: ActiveMQ over STOMP 1.2 with stomp.py; selecting it never loads a JVM.

Features
========
* STOMP 1.2 ``CONNECT`` with ``login``/``passcode`` and ``client-id`` (the connection id).
* Heart-beats both ways; a broker that falls silent is reported as a lost connection.
* ``client-individual`` acks: an ``ACK`` names one message and acknowledges that one only, so
  no acknowledgement can ever cover an event the runner has not written (see :meth:`ack_many`);
  a batch's ``ACK`` frames leave in one write. Never ``NACK`` (ActiveMQ sends a NACKed message
  straight to the dead-letter queue). Prefetch per subscription; bodies stay bytes.
* Driver errors become ``ConnectError``, ``AuthenticationError``, ``ClientIdInUseError`` or
  ``ConnectionLostError``.
* TLS with ``stomp.tls`` (see :mod:`bridge.tls`); no automatic reconnection (the runner
  reconnects), no transactions.

Connection String
=================
``stomp.hosts`` is a list of ``HOST:PORT`` (``[::1]:61613`` for IPv6), tried in the order given
until one accepts the CONNECT; refused credentials or client id end the search. The hosts share
the ``connect_timeout`` budget: each gets an equal share of what is left, so one that hangs
leaves time for the next.

Options
=======
* ``stomp.heartbeat_ms`` (10000): heart-beat interval asked for both ways; 0 turns them off.
  The connection counts as lost after 1.5 intervals without a frame from the broker.
* ``stomp.prefetch`` (1000): unacknowledged messages the broker may push per subscription.
* ``connect_timeout``: limits ``connect``, the SUBSCRIBE receipt and (at most 5 s) ``close``.
* ``credentials`` (no ``login`` header when the username is empty), ``subscription.connection_id``.
"""

from __future__ import annotations

import itertools
import logging
import socket
import ssl
import threading
from collections import deque
from time import monotonic
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import stomp
from stomp.exception import StompException
from stomp.protocol import Protocol12

from bridge.errors import (AuthenticationError, ClientIdInUseError, ConnectError,
                           ConnectionLostError, SubscriptionError, TransportError)
from bridge.event import Event, make_event
from bridge.properties import from_stomp, stomp_has_properties as has_properties
from bridge.transports import stomp_reader
from bridge.transports.base import Hooks, Transport

if TYPE_CHECKING:
    from bridge.config import BridgeConfig, Destination

log = logging.getLogger(__name__)

#: Every this many SENDs, one asks for a receipt and waits for it.
RECEIPT_EVERY = 1000
_LOST = object()  # wakes a receive() that waits when the connection drops
_AUTH_MARKERS = ("securityexception", "password is invalid", "failed to login", "authentication failed")
_CLIENT_ID_MARKERS = ("invalidclientidexception", "already connected from")
_NO_PROPERTIES: dict[str, Any] = {}  # shared by the events without properties: never changed
_HEADER_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", ":": "\\c"})


class _Link(stomp.ConnectionListener):
    """One STOMP connection: stomp.py's connection object, what it delivered, how it ended.

    The callbacks run on stomp.py's receiver (or heart-beat) thread. They only record state,
    queue frames and wake waiters, and never raise: an exception there closes the socket.
    """

    def __init__(self, owner: "StompTransport", conn: stomp.StompConnection12, endpoint: str) -> None:
        self.owner, self.conn, self.endpoint = owner, conn, endpoint
        # (headers, body) of each MESSAGE, then _LOST; unbounded, as the broker sends at most
        # ``prefetch`` unacknowledged messages per subscription. ``arrived`` is set after an append.
        self.frames: deque[Any] = deque()
        self.arrived = threading.Event()
        self.answered = threading.Event()  # CONNECTED, ERROR or end of socket while connecting
        self.gone = threading.Event()
        self.up = self.closing = False
        self.refusal: tuple[str, str] | None = None  # (first line, whole text) of the ERROR to CONNECT
        self.lost_reason: str | None = None
        self.subscriptions: dict[str, str] = {}  # subscription id -> "queue:NAME"
        self.receipts: dict[str, threading.Event] = {}
        self.receipt_errors: dict[str, tuple[str, str]] = {}  # receipt -> (first line, whole text)
        self.read_error: OSError | None = None  # why the socket's last read failed (a TLS alert...)
        self._lock = threading.Lock()
        self._note_read_errors(conn.transport)
        # MESSAGE frames come to on_messages, a read at a time (stomp_reader), or to on_message.
        stomp_reader.install(conn, self.on_messages)

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
        self.frames.append(_LOST)
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


def _single_io_thread(transport: Any, sock: ssl.SSLSocket) -> None:
    """Have stomp.py's receiver thread do the writes too, as stomp.py does for the TLS sockets it
    wraps itself: an SSL socket written by one thread while another reads it breaks (OpenSSL
    objects are not thread-safe; TLS 1.3 reads write too)."""
    import selectors

    from stomp.transport import PollableQueue

    transport.send_queue = PollableQueue()
    transport.sel = selectors.DefaultSelector()
    transport.sel.register(transport.send_queue, selectors.EVENT_READ)
    transport.sel.register(sock, selectors.EVENT_READ)
    transport.blocking = False
    sock.setblocking(False)


def _raise_tls_refusal(link: _Link, host: str) -> None:
    """Raise a ConnectError naming the TLS cause when the connection ended with a TLS alert."""
    if isinstance(link.read_error, ssl.SSLError):
        from bridge import tls
        raise ConnectError(f"{link.endpoint} ({tls.describe_python(link.read_error, host)})") from link.read_error


class StompTransport(Transport):
    """ActiveMQ over STOMP 1.2 (stomp.py); see the module docstring."""

    name = "stomp"

    def __init__(self, config: "BridgeConfig", hooks: Hooks | None = None) -> None:
        super().__init__(config, hooks)
        self._link: _Link | None = None
        self._pending: dict[int, tuple[_Link, str]] = {}  # delivery tag -> (its link, its STOMP ack id)
        self._sent = 0
        self._tags = itertools.count(1)  # never reused, so a stale tag cannot ack a newer delivery

    @property
    def connected(self) -> bool:
        """Whether the connection is up right now."""
        return self._link is not None and self._link.up

    def connect(self, timeout: float) -> None:
        """Connect to the first configured host that accepts, within ``timeout`` seconds overall.

        Raises:
            ConnectError: No host could be reached or accepted the CONNECT in time.
            AuthenticationError: The broker refused the credentials.
            ClientIdInUseError: Another connection holds the connection id.
        """
        self.close()
        deadline, hosts = monotonic() + timeout, self.config.stomp.hosts
        failures: list[str] = []
        cause: BaseException | None = None
        for index, (host, port) in enumerate(hosts):
            remaining = deadline - monotonic()
            if remaining <= 0:
                failures.append(f"{_endpoint(host, port)} (not tried: time is up)")
                continue
            try:
                self._link = self._open(host, port, remaining / (len(hosts) - index))
            except ConnectError as exc:
                failures.append(str(exc))
                cause = exc.__cause__
            else:
                self.hooks.on_connected(self.name, self._link.endpoint)
                return
        raise ConnectError(f"cannot connect over STOMP within {timeout:g}s: " + "; ".join(failures)) from cause

    def _open(self, host: str, port: int, timeout: float) -> _Link:
        endpoint, deadline = _endpoint(host, port), monotonic() + timeout
        self.hooks.on_connecting(self.name, endpoint)
        # stomp.py's connect loop retries, sleeps and logs the cause away; it skips the loop when
        # transport.socket is set (if that changes: one attempt, no sleep, still within timeout).
        try:
            sock = socket.create_connection((host, port), timeout)
            if self.config.stomp.tls.enabled:  # raises ConnectError naming the TLS cause
                from bridge import tls
                sock = tls.wrap(sock, host, self.config.stomp.tls, max(0.1, deadline - monotonic()), endpoint=endpoint)
            sock.settimeout(None)
        except OSError as exc:
            raise ConnectError(f"{endpoint} ({exc.strerror or str(exc) or type(exc).__name__})") from exc
        beat = self.config.stomp.heartbeat_ms
        conn = stomp.StompConnection12(
            [(host, port)], prefer_localhost=False, try_loopback_connect=False, reconnect_attempts_max=1,
            reconnect_sleep_initial=0, timeout=timeout, heartbeats=(beat, beat), auto_decode=False)
        conn.transport.socket, conn.transport.current_host_and_port = sock, (host, port)
        if isinstance(sock, ssl.SSLSocket):
            _single_io_thread(conn.transport, sock)
        link = _Link(self, conn, endpoint)
        conn.set_listener("amq-bridge", link)
        creds = self.config.credentials
        try:
            conn.connect(username=creds.username or None, passcode=creds.password if creds.username else None,
                         headers={"client-id": self.config.subscription.connection_id}, with_connect_command=True)
            link.answered.wait(max(0.0, deadline - monotonic()))
        except (StompException, OSError) as exc:
            link.shutdown(0)
            _raise_tls_refusal(link, host)
            raise ConnectError(f"{endpoint} ({str(exc) or type(exc).__name__})") from exc
        if link.up:
            return link
        closed = link.gone.is_set()
        link.shutdown(0)
        if link.refusal is None:
            _raise_tls_refusal(link, host)
            why = "closed the connection" if closed else f"did not answer CONNECT within {timeout:.1f}s"
            raise ConnectError(f"{endpoint} {why} (is it a STOMP port?)")
        summary, text = link.refusal
        summary = summary.replace(creds.password, "***") if creds.password else summary
        cause = StompException(f"ERROR frame from {endpoint}: {summary}")
        if any(marker in text for marker in _CLIENT_ID_MARKERS):
            raise ClientIdInUseError(self.config.subscription.connection_id) from cause
        if any(marker in text for marker in _AUTH_MARKERS):
            raise AuthenticationError(f"{endpoint} refused user {creds.username!r}: {summary}") from cause
        raise ConnectError(f"{endpoint} refused the connection: {summary}") from cause

    def subscribe(self, destination: "Destination", *, selector: str | None = None,
                  durable_name: str | None = None) -> None:
        """SUBSCRIBE with ``client-individual`` acks and wait for the broker's receipt; a topic with
        ``durable_name`` through that durable subscription (``activemq.subscriptionName``, with the
        CONNECT's ``client-id``), only messages matching ``selector`` when given.

        Raises:
            SubscriptionError: The broker refused the subscription (an invalid selector).
            TransportError: The broker did not confirm the subscription.
            ConnectionLostError: The connection is gone.
        """
        link = self._current(live=True)
        sub_id = f"sub-{len(link.subscriptions) + 1}"
        link.subscriptions[sub_id] = str(destination)
        headers = {"activemq.prefetchSize": str(self.config.stomp.prefetch)}
        if selector is not None:
            headers["selector"] = selector
        if durable_name is not None and destination.kind == "topic":
            headers["activemq.subscriptionName"] = durable_name
        try:
            self._confirmed(link, sub_id, f"subscribe {destination}",
                            lambda h: link.conn.subscribe(_path(destination), sub_id, ack="client-individual",
                                                          headers={**headers, **h}),
                            self.config.connect_timeout)
        except _Refused as exc:
            if selector is not None and "InvalidSelectorException" in exc.text:
                raise SubscriptionError(f"{self.config.source}: subscription.selector: the broker refused "
                                        f"{selector!r}: {exc.cause}") from None
            raise SubscriptionError(f"the broker refused the subscription to {destination}: {exc.reason}") from None

    def unsubscribe(self, name: str) -> None:
        """UNSUBSCRIBE the durable subscription ``name`` of this connection's client id and wait
        for the broker's receipt.

        Raises:
            SubscriptionError: It does not exist, or a consumer uses it.
        """
        link = self._current(live=True)
        who = f"durable subscription {name!r} of connection id {self.config.subscription.connection_id!r}"
        try:
            self._confirmed(link, f"unsubscribe-{name}", f"remove {who}",
                            lambda h: link.conn.unsubscribe(f"durable-{name}",
                                                            headers={"activemq.subscriptionName": name, **h}),
                            self.config.connect_timeout)
        except _Refused as exc:
            if "InvalidDestinationException" in exc.text or "no durable subscription" in exc.reason.lower():
                raise SubscriptionError(f"no {who} on the broker (nothing to remove): {exc.reason}") from None
            if "in use" in exc.reason.lower():
                raise SubscriptionError(f"{who} is in use by a running consumer: {exc.reason}") from None
            raise SubscriptionError(f"the broker refused to remove the {who}: {exc.reason}") from None

    def receive(self, max_events: int, timeout: float) -> Sequence[Event]:
        """Wait up to ``timeout`` seconds for a first event, then take up to ``max_events`` ready ones.

        After the connection drops, frames that had already arrived are still returned: a broker
        that lost non-persistent messages has no other copy. Their ``ack`` raises
        ``ConnectionLostError`` and the broker redelivers them, so a sink may see them twice.
        Once none are left, ``ConnectionLostError`` is raised.
        """
        link = self._current()
        frames = link.frames
        if not frames:
            if link.lost_reason:
                raise ConnectionLostError(link.lost_reason)
            if timeout > 0:
                link.arrived.clear()
                if not frames:  # appended before the clear: on_message saw the event still set
                    link.arrived.wait(timeout)
        events: list[Event] = []
        max_bytes, subs = self.config.max_message_bytes, link.subscriptions
        pending, tags, popleft = self._pending, self._tags, frames.popleft
        while len(events) < max_events:
            try:
                item = popleft()
            except IndexError:
                break
            if item is _LOST:
                break
            headers, body = item
            tag, stamp, sub = next(tags), headers.get("timestamp", ""), headers.get("subscription", "")
            pending[tag] = (link, headers.get("ack") or headers.get("message-id", ""))
            events.append(make_event(
                body, max_bytes, message_id=headers.get("message-id", ""), destination=subs.get(sub, ""),
                timestamp=int(stamp) if stamp.isdigit() else None,
                redelivered=headers.get("redelivered") == "true", transport="stomp", headers=headers,
                properties=from_stomp(headers) if has_properties(headers) else _NO_PROPERTIES,
                delivery_tag=tag))
        if not events and link.lost_reason:
            raise ConnectionLostError(link.lost_reason)
        return events

    def ack(self, event: Event) -> None:
        """Acknowledge this one delivery; see :meth:`ack_many`."""
        self.ack_many((event,))

    def ack_many(self, events: Sequence[Event]) -> None:
        """Acknowledge these deliveries: one ``ACK`` frame each, all of them in one socket write.

        Each ``ACK`` names one delivery and, the subscription being ``client-individual``,
        acknowledges that message only: what a frame covers never depends on the broker's view
        of what it dispatched (a cumulative ``client`` ACK covers every message the broker
        counts as dispatched before it, read by the bridge or not).

        Raises:
            TransportError: An event was not delivered by this connection, or was acked already;
                the events before it are acknowledged, it and the ones after it are not.
            ConnectionLostError: The connection they came over is gone (the broker redelivers them).
        """
        pending = self._pending
        frames: dict[_Link, list[bytes]] = {}
        error: TransportError | None = None
        for event in events:
            entry = pending.pop(event.delivery_tag, None) if event.transport == self.name else None
            if entry is None:
                error = TransportError(f"stomp: unknown delivery tag {event.delivery_tag} of message "
                                       f"{event.message_id!r} (acked already, or from another connection)")
                break
            link, ack_id = entry
            if (batch := frames.get(link)) is None:
                batch = frames[link] = []
            batch.append(ack_frame(ack_id))
        for link, batch in frames.items():
            if not link.up:
                error = error or ConnectionLostError(f"cannot ack on {link.endpoint}: "
                                                     f"{link.lost_reason or 'not connected'}")
                continue
            try:
                _write(link.conn, b"".join(batch))
            except (StompException, OSError) as exc:
                lost = ConnectionLostError(f"cannot ack on {link.endpoint}: {exc}")
                lost.__cause__ = exc
                error = error or lost
        if error is not None:
            raise error

    def send(self, destination: "Destination", body: bytes, *, persistent: bool = False) -> None:
        """SEND ``body`` as ``application/json``; ``persistent`` asks the broker to store it.

        Every ``RECEIPT_EVERY``-th SEND asks for a receipt and waits for it, so at most that many
        messages are ever unconfirmed (and a broker that falls behind slows the sender down).
        """
        link = self._current(live=True)
        headers = {"persistent": "true"} if persistent else {}
        self._sent += 1
        if self._sent % RECEIPT_EVERY == 0:
            self._confirmed(link, f"send-{self._sent}", f"send to {destination}",
                            lambda h: link.conn.send(_path(destination), body, content_type="application/json",
                                                     headers={**headers, **h}))
            return
        try:
            link.conn.send(_path(destination), body, content_type="application/json", headers=headers)
        except (StompException, OSError) as exc:
            raise ConnectionLostError(f"cannot send to {destination} on {link.endpoint}: {exc}") from exc

    def flush_sends(self, timeout: float) -> None:
        """Wait until the broker confirms every SEND so far.

        The broker handles a connection's frames in order, so the receipt of an empty transaction
        (BEGIN, then ABORT) begun after the last SEND confirms all of them.
        """
        link = self._current(live=True)
        tx = f"flush-{self._sent}"
        self._confirmed(link, tx, "confirm sent messages", lambda h: link.conn.begin(tx, headers=h), timeout)
        try:
            link.conn.abort(tx)
        except (StompException, OSError) as exc:
            raise ConnectionLostError(f"confirm sent messages: {exc}") from exc

    def _confirmed(self, link: _Link, rid: str, what: str, action: Callable[[dict[str, str]], None],
                   timeout: float | None = None) -> None:
        """Run ``action`` with a ``receipt`` header and wait for the broker's receipt."""
        timeout = max(30.0, self.config.connect_timeout) if timeout is None else timeout
        waiter = link.receipts[rid] = threading.Event()
        try:
            action({"receipt": rid})
            if not waiter.wait(timeout):
                raise TransportError(f"{what}: no receipt from {link.endpoint} within {timeout:g}s")
        except (StompException, OSError) as exc:
            raise ConnectionLostError(f"{what}: {str(exc) or type(exc).__name__}") from exc
        finally:
            del link.receipts[rid]
        if rid in link.receipt_errors:
            raise _Refused(what, *link.receipt_errors.pop(rid))
        if link.lost_reason:
            raise ConnectionLostError(f"{what}: {link.lost_reason}")

    def close(self) -> None:
        """DISCONNECT and end stomp.py's threads; safe to call twice, never raises."""
        link, self._link = self._link, None
        self._pending.clear()
        if link is not None:
            try:
                link.shutdown(min(5.0, self.config.connect_timeout))
            except Exception:
                log.exception("closing the STOMP connection to %s failed", link.endpoint)

    def _current(self, *, live: bool = False) -> _Link:
        link = self._link
        if link is None:
            raise TransportError("stomp transport is not connected")
        if live and not link.up:
            raise ConnectionLostError(link.lost_reason or f"connection to {link.endpoint} lost")
        return link


class _Refused(TransportError):
    """The broker answered a frame that asked for a receipt with an ERROR.

    Attributes:
        reason: The ERROR's message; ``cause``: the message of the deepest ``Caused by:`` of the
            Java stack trace ActiveMQ puts in the body (or ``reason``); ``text``: the whole body.
    """

    def __init__(self, what: str, reason: str, text: str) -> None:
        self.reason, self.text = reason, text
        causes = [line[len("Caused by: "):] for line in text.splitlines() if line.startswith("Caused by: ")]
        self.cause = causes[-1].split(": ", 1)[-1].strip() if causes else reason
        super().__init__(f"{what}: the broker said: {reason}")


def ack_frame(ack_id: str) -> bytes:
    """The STOMP 1.2 ``ACK`` frame naming ``ack_id`` (header value escaped as the spec says)."""
    if "\\" in ack_id or ":" in ack_id or "\n" in ack_id or "\r" in ack_id:
        ack_id = ack_id.translate(_HEADER_ESCAPES)
    return b"ACK\nid:" + ack_id.encode() + b"\n\n\x00"


def _write(conn: Any, data: bytes) -> None:
    """Send ready-made frames on stomp.py's connection, as its ``transmit`` does for one frame:
    through the receiver thread's queue when that thread does the writes (TLS), else directly."""
    transport = conn.transport
    if transport.blocking:
        transport.send(data)
    else:
        transport.send_queue.put(data)


def _endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _path(destination: "Destination") -> str:
    return f"/{destination.kind}/{destination.name}"

