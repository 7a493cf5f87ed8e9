"""STOMP transport: ActiveMQ over STOMP 1.2 with stomp.py; selecting it never loads a JVM.

Features
========
* STOMP 1.2 ``CONNECT`` with ``login``/``passcode`` and ``client-id`` (the connection id).
* Heart-beats both ways; a broker that falls silent is reported as a lost connection.
* ``client-individual`` acks: an ``ACK`` names one message and acknowledges that one only, so
  no acknowledgement can ever cover an event the runner has not written (see :meth:`ack_many`);
  a batch's ``ACK`` frames leave in one write. Never ``NACK`` (ActiveMQ sends a NACKed message
  straight to the dead-letter queue). Prefetch per subscription; bodies stay bytes.
* Driver errors become ``ConnectError``, ``AuthenticationError``, ``ClientIdInUseError``,
  ``SubscriptionError`` (a refused SUBSCRIBE, e.g. its selector, or UNSUBSCRIBE) or
  ``ConnectionLostError``.
* Topics: a durable subscription with ``activemq.subscriptionName`` on SUBSCRIBE (and the
  CONNECT's ``client-id``); ``unsubscribe()`` removes it (UNSUBSCRIBE with that header).
  ``selector`` on SUBSCRIBE; ActiveMQ parses it and compares string properties with numbers.
* Properties: ActiveMQ's MESSAGE headers typed back into :mod:`bridge.properties`' model (the
  same names and values as OpenWire gives, within what STOMP's text headers allow).
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
import threading
from time import monotonic, sleep
from typing import TYPE_CHECKING, Any, Callable, Sequence

from bridge.errors import ConnectError, ConnectionLostError, TransportError
from bridge.event import Event, make_event
from bridge.properties import from_stomp, stomp_has_properties as has_properties
from bridge.transports.base import Hooks, Transport
from bridge.transports.stomp.connect import open_link
from bridge.transports.stomp.errors import Refused, subscription_refused, unsubscribe_refused
from bridge.transports.stomp.frames import SEND_ERRORS, ack_frame, path, shown, write
from bridge.transports.stomp.link import LOST, Link

if TYPE_CHECKING:
    from bridge.config import BridgeConfig, Destination

log = logging.getLogger(__name__)

#: Every this many SENDs, one asks for a receipt and waits for it.
RECEIPT_EVERY = 1000
_NO_PROPERTIES: dict[str, Any] = {}  # shared by the events without properties: never changed


class StompTransport(Transport):
    """ActiveMQ over STOMP 1.2 (stomp.py); see the module docstring."""

    name = "stomp"

    def __init__(self, config: "BridgeConfig", hooks: Hooks | None = None) -> None:
        super().__init__(config, hooks)
        self._link: Link | None = None
        self._pending: dict[int, tuple[Link, str]] = {}  # delivery tag -> (its link, its STOMP ack id)
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
                failures.append(f"{shown(host, port)} (not tried: time is up)")
                continue
            try:
                self._link = open_link(self, host, port, remaining / (len(hosts) - index))
            except ConnectError as exc:
                failures.append(str(exc))
                cause = exc.__cause__
            else:
                self.hooks.on_connected(self.name, self._link.endpoint)
                return
        raise ConnectError(f"cannot connect over STOMP within {timeout:g}s: " + "; ".join(failures)) from cause

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
                            lambda h: link.conn.subscribe(path(destination), sub_id, ack="client-individual",
                                                          headers={**headers, **h}),
                            self.config.connect_timeout)
        except Refused as exc:
            raise subscription_refused(exc, str(destination), selector, self.config.source) from None

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
        except Refused as exc:
            raise unsubscribe_refused(exc, who) from None

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
        linger = self.config.batch_linger_ms
        if linger and frames and len(frames) < max_events and not link.lost_reason:
            # Let a few more arrive, up to batch_linger_ms after the first of them: one batch for
            # them, not one each (frames that came while the last batch was written waited already).
            wait = link.first_arrival + linger / 1000 - monotonic()
            if wait > 0:
                sleep(wait)
        events: list[Event] = []
        max_bytes, subs = self.config.max_message_bytes, link.subscriptions
        pending, tags, popleft = self._pending, self._tags, frames.popleft
        while len(events) < max_events:
            try:
                item = popleft()
            except IndexError:
                break
            if item is LOST:
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
        frames: dict[Link, list[bytes]] = {}
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
                write(link.conn, b"".join(batch))
            except SEND_ERRORS as exc:
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
                            lambda h: link.conn.send(path(destination), body, content_type="application/json",
                                                     headers={**headers, **h}))
            return
        try:
            link.conn.send(path(destination), body, content_type="application/json", headers=headers)
        except SEND_ERRORS as exc:
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
        except SEND_ERRORS as exc:
            raise ConnectionLostError(f"confirm sent messages: {exc}") from exc

    def _confirmed(self, link: Link, rid: str, what: str, action: Callable[[dict[str, str]], None],
                   timeout: float | None = None) -> None:
        """Run ``action`` with a ``receipt`` header and wait for the broker's receipt."""
        timeout = max(30.0, self.config.connect_timeout) if timeout is None else timeout
        waiter = link.receipts[rid] = threading.Event()
        try:
            action({"receipt": rid})
            if not waiter.wait(timeout):
                raise TransportError(f"{what}: no receipt from {link.endpoint} within {timeout:g}s")
        except SEND_ERRORS as exc:
            raise ConnectionLostError(f"{what}: {str(exc) or type(exc).__name__}") from exc
        finally:
            del link.receipts[rid]
        if rid in link.receipt_errors:
            raise Refused(what, *link.receipt_errors.pop(rid))
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

    def _current(self, *, live: bool = False) -> Link:
        link = self._link
        if link is None:
            raise TransportError("stomp transport is not connected")
        if live and not link.up:
            raise ConnectionLostError(link.lost_reason or f"connection to {link.endpoint} lost")
        return link
