"""OpenWire transport: ActiveMQ's own JMS client, driven through JPype.

Features
========
* Acknowledgement never covers a message the caller has not acked: with the helper jar the
  session is ``CLIENT_ACKNOWLEDGE`` and each run of consecutive deliveries acked goes out as one
  ranged acknowledgement naming exactly those messages (jars/src RangedAcks.java), so the helper
  receives the next batches on a Java thread while the caller writes this one; where ActiveMQ's
  client does not allow ranged ones, one ``acknowledge()`` once every message received so far
  was acked, and nothing received ahead. Without the helper, ``INDIVIDUAL_ACKNOWLEDGE``, one per
  message. Whatever is unacked is redelivered, to the next connection or after a failover.
* Batches cross into Java once: with ``jars/amq-bridge-helper.jar`` (built by scripts/setup, see
  :mod:`bridge.transports.openwire.batch`) a ``receive()`` and an ``ack_many()`` are one Java call
  each; without it, the same is done with JPype calls per message.
* Always ActiveMQ failover underneath: a broken or silently stalled connection is re-established
  with exponential backoff while the session and consumer stay usable. ``receive()`` returns
  ``[]`` while it reconnects; the hooks report each change of state once.
* Gone for good: ``receive()``, ``ack()`` and ``send()`` raise ``ConnectionLostError`` once
  failover gives up (``reconnect.max_attempts``) or the connection dropped 3 times within a
  minute; the caller then closes it and connects afresh.
* Acks across a failover: a message delivered before the connection was interrupted is
  redelivered by the broker anyway, so its ``ack()`` is skipped (logged at DEBUG). The client
  never sends redelivered messages to the DLQ (no duplicate audit, no redelivery limit).
* Text and bytes messages are decoded; object messages are refused, never deserialized; map,
  stream and bare messages become events with ``problem`` set.
* The connection id is the JMS client id; a second connection with the same id is refused.
* Topics: a durable subscriber (``createDurableSubscriber``, named by ``durable_name``) keeps what
  is published while no bridge runs; ``unsubscribe()`` removes it. A selector is parsed by the
  ActiveMQ client itself: a refused one is a ``SubscriptionError`` with ActiveMQ's reason.
* Properties: the message's application properties and standard headers, as JSON values
  (:mod:`bridge.properties`): read in Java by the helper (jars/src ``Properties.java``), else by
  :mod:`bridge.transports.openwire.properties`.
* Connections left open are closed at interpreter exit, so the broker frees their ids at once.
* TLS (``ssl://`` URLs): trust and identity from ``openwire.tls`` (see :mod:`bridge.tls`), host
  name verified unless ``verify_hostname: false``; a handshake failure is a ``ConnectError``
  whose message starts with ``TLS:`` and names the cause.
* ``openwire.connection_factory``: a ``javax.jms.ConnectionFactory`` class of your own (e.g. a
  subclass of ActiveMQ's) replaces ``ActiveMQConnectionFactory``; it must make ActiveMQ
  connections. ActiveMQ's tuning (prefetch, redelivery...) is applied when it is an
  ``ActiveMQConnectionFactory``.

Connection String
=================
``failover:(URL,...)?randomize=false&...``, built by :mod:`bridge.transports.openwire.url`
(which documents every option): TCP and wire-format options from ``connect_timeout`` and
``openwire.heartbeat_ms``, backoff from ``reconnect``, startup bounded by ``connect_timeout``.

Options
=======
``openwire.urls``, ``openwire.prefetch`` (queue and topic prefetch), ``openwire.heartbeat_ms``,
``openwire.jars_dir``, ``openwire.classpath``, ``openwire.tls.*``, ``openwire.connection_factory``,
``connect_timeout``, ``reconnect.*``,
``credentials`` (empty username: none sent), ``subscription.connection_id``, ``max_message_bytes``;
``subscription.selector``, ``.durable``, ``.subscription_name`` through the runner.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Sequence

from bridge import jvm
from bridge.config import Destination
from bridge.errors import TransportError
from bridge.event import Event
from bridge.transports.base import Hooks, Transport
from bridge.transports.openwire import connection
from bridge.transports.openwire.errors import unsubscribe_error
from bridge.transports.openwire.java import classes
from bridge.transports.openwire.receive import Receiver
from bridge.transports.openwire.send import Sender
from bridge.transports.openwire.state import ConnectionState
from bridge.transports.openwire.url import shown

if TYPE_CHECKING:
    from bridge.config import BridgeConfig

log = logging.getLogger(__name__)


class OpenWireTransport(Transport):
    """A JMS connection to ActiveMQ over OpenWire: one consumer, producers cached per destination.

    The parts: :mod:`~bridge.transports.openwire.connection` opens and closes the connection,
    :class:`~bridge.transports.openwire.state.ConnectionState` follows it (failover's epochs, the
    hooks), :class:`~bridge.transports.openwire.receive.Receiver` receives and acknowledges, and
    :class:`~bridge.transports.openwire.send.Sender` publishes.
    """

    name = "openwire"

    def __init__(self, config: "BridgeConfig", hooks: Hooks | None = None) -> None:
        super().__init__(config, hooks)
        self._state = ConnectionState(self.name, config, self.hooks)
        self._receiver = Receiver(self.name, self._state)
        self._sender = Sender(self._state)
        self._cumulative = False  # the session acknowledges cumulatively (CLIENT_ACKNOWLEDGE)

    @property
    def connected(self) -> bool:
        """Whether the connection is up right now (false while failover reconnects)."""
        state = self._state
        failover = state.failover
        return failover is not None and state.lost is None and bool(failover.isConnected())

    def connect(self, timeout: float) -> None:
        """Connect, authenticate and register the client id within about ``timeout`` seconds.

        Raises:
            TransportUnavailableError: No Java, JPype or client jars.
            ConnectError: No broker answered in time; the message names the URLs and the cause.
            AuthenticationError: The broker refused the credentials.
            ClientIdInUseError: The connection id is already connected.
        """
        state = self._state
        if state.connection is not None:
            if state.lost is None:
                return
            self.close()  # a lost connection is replaced; subscribe() again afterwards
        cfg = self.config
        jvm.ensure_jvm(jvm.classpath(cfg.openwire.jars_dir, ("client",), cfg.openwire.classpath),
                       options=cfg.openwire.jvm_options)
        classes()
        endpoint = shown(cfg.openwire.urls)
        self.hooks.on_connecting(self.name, endpoint)
        opened = connection.establish(cfg, timeout, endpoint, state)
        self._cumulative = opened.cumulative
        state.attach(opened)
        connection.track(self, True)
        log.debug("connected to %s as %s", endpoint, cfg.subscription.connection_id)
        state.sync()

    def subscribe(self, destination: Destination, *, selector: str | None = None,
                  durable_name: str | None = None) -> None:
        """Start consuming ``destination`` (one per connection) with individual acknowledgement:
        a topic through the durable subscription ``durable_name`` when given, only the messages
        matching ``selector`` when given.

        Raises:
            SubscriptionError: ActiveMQ refused the selector (its parser runs in the client).
        """
        self._state.check()
        receiver = self._receiver
        if receiver.consumer is not None:
            if receiver.destination == str(destination):
                return
            raise TransportError(f"already consuming {receiver.destination}; one destination per connection")
        receiver.subscribe(self._state.session, destination, cumulative=self._cumulative, selector=selector,
                           durable_name=durable_name)

    def unsubscribe(self, name: str) -> None:
        """Remove the durable subscription ``name`` of this connection's client id.

        Raises:
            SubscriptionError: It does not exist, or a consumer uses it.
        """
        state = self._state
        state.check()
        who = f"durable subscription {name!r} of connection id {self.config.subscription.connection_id!r}"
        try:
            state.session.unsubscribe(name)
        except classes().JException as exc:
            raise unsubscribe_error(who, exc, state.lost, self.config) from exc

    def receive(self, max_events: int, timeout: float) -> Sequence[Event]:
        """Wait up to ``timeout`` seconds for a first message, then take up to ``max_events`` ready ones.

        Returns ``[]`` when nothing arrived in time, also while failover reconnects.

        Raises:
            ConnectionLostError: The connection is gone for good (failover gave up).
        """
        return self._receiver.receive(max_events, timeout)

    @property
    def independent_acks(self) -> bool:
        """True with individual or ranged acknowledgements; false in the cumulative fallback (its
        acknowledgement waits until nothing received is left unacked)."""
        return not self._cumulative or self._receiver.ranged

    def ack(self, event: Event) -> None:
        """Acknowledge this event's message (with the helper: once every message received so far is acked).

        A message delivered before the connection was interrupted is not acknowledged: the
        broker redelivers it anyway (logged at DEBUG).

        Raises:
            TransportError: The tag is unknown here (already acked, or another connection's).
            ConnectionLostError: The connection is gone for good; the broker will redeliver.
        """
        self.ack_many((event,))

    def ack_many(self, events: Sequence[Event]) -> None:
        """Acknowledge these events' messages, in order: with the helper one Java call, and one
        acknowledgement per run of consecutive deliveries (or, cumulative, one once nothing
        received is left unacked).

        As ``ack()`` on each in turn: an unknown tag raises once the events before it are acked.

        Raises:
            TransportError: A tag is unknown here (already acked, or another connection's).
            ConnectionLostError: The connection is gone for good; the broker will redeliver.
        """
        self._receiver.ack_many(events)

    def send(self, destination: Destination, body: bytes, *, persistent: bool = False) -> None:
        """Publish ``body`` as a TextMessage (it must be UTF-8) to ``destination``.

        While failover reconnects this waits up to ``connect_timeout`` for the connection.

        Raises:
            MessageError: ``body`` is not UTF-8.
            ConnectionLostError: The connection is gone, or did not come back in time.
            TransportError: The broker refused the message.
        """
        self._sender.send(destination, body, persistent)

    def close(self) -> None:
        """Close the connection (never the JVM, which cannot restart); safe to call twice, never raises."""
        opened, was_up = self._state.detach()
        self._sender.reset()
        self._receiver.reset()
        connection.track(self, False)
        if opened is not None:
            connection.close_quietly(opened)
            if was_up:
                self._state.notify(False, "closed")
