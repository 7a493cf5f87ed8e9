"""OpenWire transport: ActiveMQ's own JMS client, driven through JPype.

Features
========
* Acknowledgement never covers a message the caller has not acked: with the helper jar the
  session is ``CLIENT_ACKNOWLEDGE`` and one acknowledgement goes out once every message received
  so far was acked (one broker command per batch, as the runner acks whole batches); without
  it, ``INDIVIDUAL_ACKNOWLEDGE``, one per message. Whatever is unacked is redelivered, to the
  next connection or after a failover.
* Batches cross into Java once: with ``jars/amq-bridge-helper.jar`` (built by scripts/setup, see
  :mod:`bridge.transports.openwire_batch`) a ``receive()`` and an ``ack_many()`` are one Java call
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
``failover:(URL,...)?randomize=false&...``, built by :mod:`bridge.transports.openwire_url`
(which documents every option): TCP and wire-format options from ``connect_timeout`` and
``openwire.heartbeat_ms``, backoff from ``reconnect``, startup bounded by ``connect_timeout``.

Options
=======
``openwire.urls``, ``openwire.prefetch`` (queue prefetch), ``openwire.heartbeat_ms``,
``openwire.jars_dir``, ``openwire.classpath``, ``openwire.tls.*``, ``openwire.connection_factory``,
``connect_timeout``, ``reconnect.*``,
``credentials`` (empty username: none sent), ``subscription.connection_id``, ``max_message_bytes``.
"""

from __future__ import annotations

import atexit
import collections
import functools
import logging
import threading
import time
import types
import weakref
from typing import TYPE_CHECKING, Any, Sequence

from bridge import jvm, properties, tls
from bridge.config import Destination
from bridge.errors import (AuthenticationError, ClientIdInUseError, ConfigError, ConnectError, ConnectionLostError,
                           MessageError, SubscriptionError, TransportError, TransportUnavailableError)
from bridge.event import Event, make_event
from bridge.transports import openwire_batch
from bridge.transports.base import Hooks, Transport
from bridge.transports.openwire_url import broker_url, first_tls_host, shown, uses_tls

if TYPE_CHECKING:
    from bridge.config import BridgeConfig

log = logging.getLogger(__name__)

INDIVIDUAL_ACKNOWLEDGE = 4  # org.apache.activemq.ActiveMQSession.INDIVIDUAL_ACKNOWLEDGE
CLIENT_ACKNOWLEDGE = 2  # javax.jms.Session.CLIENT_ACKNOWLEDGE
AUTO_ACKNOWLEDGE = 1  # javax.jms.Session.AUTO_ACKNOWLEDGE: the send session only
CLOSE_WAIT = 5.0  # seconds close() waits for the Java side; see _close_quietly
#: This many interruptions within FLAP_WINDOW seconds and the connection counts as lost; see _sync.
FLAP_LIMIT, FLAP_WINDOW = 3, 60.0
_open: "weakref.WeakSet[OpenWireTransport]" = weakref.WeakSet()  # see _close_all


class OpenWireTransport(Transport):
    """A JMS connection to ActiveMQ over OpenWire: one consumer, producers cached per destination.

    How the connection state is followed: a ``TransportListener`` made by
    ``java.beans.EventHandler`` counts failover's interruptions in a Java ``AtomicInteger``, and
    failover says whether it is connected. No Python runs on ActiveMQ's threads for that (a
    Python listener is called for every command received, which halved throughput); ``receive()``
    and ``send()`` read the state and report its changes to the hooks on the caller's thread, so
    a hook runs at most ``receive()``'s timeout late. The count is the *epoch* of each delivery.
    """

    name = "openwire"

    def __init__(self, config: "BridgeConfig", hooks: Hooks | None = None) -> None:
        super().__init__(config, hooks)
        self._connection: Any = None
        self._failover: Any = None  # org.apache.activemq.transport.failover.FailoverTransport
        self._interrupts: Any = None  # java.util.concurrent.atomic.AtomicInteger
        self._session: Any = None
        self._send_session: Any = None
        self._consumer: Any = None
        self._destination = ""
        self._producers: dict[Destination, Any] = {}
        self._batch: openwire_batch.BatchReceiver | None = None  # the helper; it keeps the messages
        self._cumulative = False  # the session acknowledges cumulatively (CLIENT_ACKNOWLEDGE)
        # delivery tag -> (javax.jms.Message, or None when the helper keeps it; epoch)
        self._unacked: dict[int, tuple[Any, int]] = {}
        self._next_tag = 0
        self._kinds: dict[type, str] = {}  # JPype class of a message -> text, bytes, ...
        self._lost: str | None = None  # set (on a Java thread) once the connection is gone for good
        self._state = threading.Lock()  # guards the three below; never held across a Java call
        self._epoch = 0  # interruptions seen so far
        self._drops: collections.deque[float] = collections.deque()  # when recent ones were seen
        self._reported_up = False  # what the hooks were last told

    @property
    def connected(self) -> bool:
        """Whether the connection is up right now (false while failover reconnects)."""
        failover = self._failover
        return failover is not None and self._lost is None and bool(failover.isConnected())

    def connect(self, timeout: float) -> None:
        """Connect, authenticate and register the client id within about ``timeout`` seconds.

        Raises:
            TransportUnavailableError: No Java, JPype or client jars.
            ConnectError: No broker answered in time; the message names the URLs and the cause.
            AuthenticationError: The broker refused the credentials.
            ClientIdInUseError: The connection id is already connected.
        """
        if self._connection is not None:
            if self._lost is None:
                return
            self.close()  # a lost connection is replaced; subscribe() again afterwards
        cfg, ms = self.config, max(1000, int(timeout * 1000))
        jvm.ensure_jvm(jvm.classpath(cfg.openwire.jars_dir, ("client",), cfg.openwire.classpath),
                       options=cfg.openwire.jvm_options)
        java, endpoint = _java(), shown(cfg.openwire.urls)
        self.hooks.on_connecting(self.name, endpoint)
        tls_config = cfg.openwire.tls
        secure = uses_tls(cfg.openwire.urls)
        try:
            ssl_context = tls.java_ssl_context(tls_config) if secure else None
        except ConfigError as exc:
            raise ConfigError(exc.reason, source=cfg.source, key=exc.key) from None
        if secure and tls_config.insecure:
            tls.warn_insecure(self.name, endpoint)
        factory = self._factory(broker_url(cfg.openwire.urls, timeout, heartbeat_ms=cfg.openwire.heartbeat_ms,
                                           reconnect=cfg.reconnect,
                                           verify_hostname=tls_config.verify_hostname and not tls_config.insecure))
        if isinstance(factory, java.Factory):
            self._tune(factory, ms)
        connection, watchdog, timed_out = None, None, threading.Event()
        interrupts = java.AtomicInteger()
        try:
            connection = self._create_connection(factory, ssl_context)
            # Failover retries and silent peers can outlast every URL option: the watchdog
            # wakes start() from another thread when the time is up.
            watchdog = threading.Timer(timeout + 0.5, _wake, (connection, timed_out, timeout))
            watchdog.daemon = True
            watchdog.start()
            connection.addTransportListener(java.counting("transportInterupted", interrupts))
            connection.setExceptionListener(java.Listener(weakref.ref(self)))
            connection.setClientID(cfg.subscription.connection_id)
            connection.start()
            session = connection.createSession(False, self._ack_mode())
            failover = connection.getTransport().narrow(java.Failover)
        except BaseException as exc:
            if connection is not None:  # after a time-out, closing may wait as long again
                _close_quietly(connection, 0 if timed_out.is_set() else CLOSE_WAIT)
            if not isinstance(exc, java.JException):
                raise
            if timed_out.is_set():
                cause = self._tls_cause(exc) if secure else None
                raise ConnectError(f"cannot connect to {endpoint}: {cause or f'no answer within {timeout:g} s'}") from exc
            raise self._connect_error(exc, endpoint) from exc
        finally:
            if watchdog is not None:
                watchdog.cancel()
        with self._state:
            self._connection, self._session, self._failover, self._interrupts = connection, session, failover, interrupts
            self._lost, self._epoch, self._reported_up = None, int(interrupts.get()), False
            self._drops.clear()
        _open.add(self)
        log.debug("connected to %s as %s", endpoint, cfg.subscription.connection_id)
        self._sync()

    def _factory(self, url: str) -> Any:
        """ActiveMQConnectionFactory for ``url``, or an instance of ``openwire.connection_factory``.

        Raises:
            TransportUnavailableError: The class is not on the classpath or cannot be constructed.
            ConfigError: The class is not a javax.jms.ConnectionFactory.
        """
        java, name = _java(), self.config.openwire.connection_factory
        if name is None:
            return java.Factory(url)
        import jpype

        try:
            cls = jpype.JClass(name)
        except Exception as exc:
            raise TransportUnavailableError(f"openwire.connection_factory: class {name} is not on the classpath "
                                            f"(add its jar or folder to openwire.classpath): {exc}") from None
        if not java.ConnectionFactory.class_.isAssignableFrom(cls.class_):
            raise ConfigError(f"{name} is not a javax.jms.ConnectionFactory", source=self.config.source,
                              key="openwire.connection_factory")
        try:
            factory = cls()
        except Exception as exc:
            raise TransportUnavailableError(f"openwire.connection_factory: {name}() failed: "
                                            f"{self._redact(jvm.describe(exc) if hasattr(exc, 'getCause') else str(exc))}") from None
        if hasattr(factory, "setBrokerURL"):
            factory.setBrokerURL(url)
        else:
            log.warning("openwire.connection_factory %s has no setBrokerURL: openwire.urls are not used", name)
        if not isinstance(factory, java.Factory):
            log.info("openwire.connection_factory %s is not an ActiveMQConnectionFactory: prefetch, redelivery "
                     "and time-out settings are left to it", name)
        log.debug("using connection factory %s", name)
        return factory

    def _tune(self, factory: Any, ms: int) -> None:
        """Settings of an ActiveMQConnectionFactory (or subclass) this transport depends on."""
        cfg = self.config
        if cfg.credentials.username:
            factory.setUserName(cfg.credentials.username)
            factory.setPassword(cfg.credentials.password)
        prefetch = factory.getPrefetchPolicy()
        prefetch.setQueuePrefetch(cfg.openwire.prefetch)
        prefetch.setTopicPrefetch(cfg.openwire.prefetch)  # a topic's default is 32767: memory unbounded
        prefetch.setDurableTopicPrefetch(cfg.openwire.prefetch)
        factory.setWatchTopicAdvisories(False)  # no temporary destinations: one consumer less
        # ObjectMessages are refused unread; should anything call getObject() anyway, no class
        # may be deserialized (ActiveMQ's own default list is set empty too).
        factory.setTrustAllPackages(False)
        factory.setTrustedPackages(_java().ArrayList())
        # After a failover the broker redelivers what was not acked; the client's duplicate
        # audit would "poison ack" exactly those messages to the DLQ. Let them through.
        factory.setCheckForDuplicates(False)
        # Every failover or crash raises the redelivery count of the messages in flight; after 6
        # the client would send them to the DLQ. We never roll back: redelivery only comes
        # from reconnecting, so there is no reason to give up on a message.
        factory.getRedeliveryPolicy().setMaximumRedeliveries(-1)
        factory.setConnectResponseTimeout(ms)
        factory.setCloseTimeout(min(ms, 15000))

    def _create_connection(self, factory: Any, ssl_context: Any) -> Any:
        """``factory.createConnection()`` with ``ssl_context`` current: failover keeps the SslContext
        current on this thread when it is created and uses it for every (re)connection."""
        java, creds = _java(), self.config.credentials
        previous = java.SslContext.getCurrentSslContext()
        if ssl_context is not None:
            java.SslContext.setCurrentSslContext(ssl_context)
        try:
            if isinstance(factory, java.Factory) or not creds.username:
                connection = factory.createConnection()
            else:
                connection = factory.createConnection(creds.username, creds.password)
        finally:
            if ssl_context is not None:
                java.SslContext.setCurrentSslContext(previous)
        if not isinstance(connection, java.Connection):
            _close_quietly(connection)
            raise TransportUnavailableError(
                f"openwire.connection_factory {self.config.openwire.connection_factory} made a "
                f"{connection.getClass().getName()}, not an ActiveMQConnection; amq-bridge needs ActiveMQ's client")
        return connection

    def _ack_mode(self) -> int:
        """CLIENT_ACKNOWLEDGE with the helper (one acknowledgement per batch, once every message
        received was acked: see openwire_batch), else INDIVIDUAL_ACKNOWLEDGE."""
        self._cumulative = openwire_batch.available()
        return CLIENT_ACKNOWLEDGE if self._cumulative else INDIVIDUAL_ACKNOWLEDGE

    def subscribe(self, destination: Destination, *, selector: str | None = None,
                  durable_name: str | None = None) -> None:
        """Start consuming ``destination`` (one per connection) with individual acknowledgement:
        through the durable subscription ``durable_name`` for a topic when given, only the
        messages matching ``selector`` when given.

        Raises:
            SubscriptionError: ActiveMQ refused the selector (its parser runs in the client).
        """
        self._check()
        if self._consumer is not None:
            if self._destination == str(destination):
                return
            raise TransportError(f"already consuming {self._destination}; one destination per connection")
        java = _java()
        try:
            target = _java_destination(self._session, destination)
            if durable_name is not None and destination.kind == "topic":
                self._consumer = self._session.createDurableSubscriber(target, durable_name, selector, False)
            elif selector is not None:
                self._consumer = self._session.createConsumer(target, selector)
            else:
                self._consumer = self._session.createConsumer(target)
            self._batch = openwire_batch.load(self._consumer, cumulative=self._cumulative)
        except java.JException as exc:
            if any(isinstance(link, java.InvalidSelector) for link in jvm.causes(exc)):
                raise SubscriptionError(f"{self.config.source}: subscription.selector: ActiveMQ refused "
                                        f"{selector!r}: {_deepest_message(exc)}") from None
            raise self._runtime_error(f"cannot consume {destination}", exc) from exc
        self._destination = str(destination)

    def unsubscribe(self, name: str) -> None:
        """Remove the durable subscription ``name`` of this connection's client id.

        Raises:
            SubscriptionError: It does not exist, or a consumer uses it.
        """
        self._check()
        java, who = _java(), f"durable subscription {name!r} of connection id {self.config.subscription.connection_id!r}"
        try:
            self._session.unsubscribe(name)
        except java.JException as exc:
            cause = self._redact(jvm.describe(exc))
            if any(isinstance(link, java.InvalidDestination) for link in jvm.causes(exc)):
                raise SubscriptionError(f"no {who} on the broker (nothing to remove): {cause}") from None
            if "in use" in cause.lower():
                raise SubscriptionError(f"{who} is in use by a running consumer: {cause}") from None
            raise self._runtime_error(f"cannot remove {who}", exc) from exc

    def receive(self, max_events: int, timeout: float) -> Sequence[Event]:
        """Wait up to ``timeout`` seconds for a first message, then take up to ``max_events`` ready ones.

        Returns ``[]`` when nothing arrived in time, also while failover reconnects.

        Raises:
            ConnectionLostError: The connection is gone for good (failover gave up).
        """
        self._check()
        if self._consumer is None:
            raise TransportError("receive() before subscribe()")
        deadline = time.monotonic() + timeout
        while not self._sync():  # while interrupted, what is prefetched is stale: wait it out
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            time.sleep(min(0.05, left))
            self._check()
        consumer, messages, wait_ms = self._consumer, [], max(1, int((deadline - time.monotonic()) * 1000))
        if self._batch is not None:
            try:
                events = self._batch.receive(max_events, wait_ms, destination=self._destination, transport=self.name,
                                             max_bytes=self.config.max_message_bytes)
            except _java().JException as exc:
                raise self._runtime_error(f"receive from {self._destination} failed", exc) from exc
            epoch = int(self._interrupts.get())  # after the messages: see below
            for event in events:
                self._unacked[event.delivery_tag] = (None, epoch)
            return events
        try:
            message = consumer.receive(wait_ms)
            while message is not None:
                messages.append(message)
                if len(messages) >= max_events:
                    break
                message = consumer.receiveNoWait()
        except _java().JException as exc:
            raise self._runtime_error(f"receive from {self._destination} failed", exc) from exc
        # Read after the messages: a batch that spans an interruption counts as after it, so its
        # acks are sent (at worst for a stale message, which the broker ignores) rather than
        # skipped (which would leave a fresh delivery unacknowledged on the new connection).
        epoch = int(self._interrupts.get())
        return [self._event(message, epoch) for message in messages]

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
        """Acknowledge these events' messages, in order: one Java call and (cumulative) one
        acknowledgement with the helper, once nothing received is left unacked.

        As ``ack()`` on each in turn: an unknown tag raises once the events before it are acked.

        Raises:
            TransportError: A tag is unknown here (already acked, or another connection's).
            ConnectionLostError: The connection is gone for good; the broker will redeliver.
        """
        taken: list[tuple[Event, Any, int]] = []
        unknown = None
        for event in events:
            entry = self._unacked.pop(event.delivery_tag, None)
            if entry is None:
                unknown = event
                break
            taken.append((event, *entry))
        if taken:
            self._ack_taken(taken)
        if unknown is not None:
            raise TransportError(f"cannot ack message {unknown.message_id}: unknown delivery tag "
                                 f"{unknown.delivery_tag} (already acked, or from another connection)")

    def _ack_taken(self, taken: list[tuple[Event, Any, int]]) -> None:
        what = taken[0][0].message_id if len(taken) == 1 else f"{len(taken)} messages from {taken[0][0].message_id}"
        if self._lost is not None:
            self._sync()
            if self._batch is not None:
                self._batch.forget([event.delivery_tag for event, _, _ in taken])
            raise ConnectionLostError(f"ack of {what} failed: connection to the broker lost: {self._lost}")
        # Failover counts the interruption before it reconnects, so an unchanged count means
        # these messages were delivered on the connection in place (or it is being torn down right
        # now, and failover drops the acks itself).
        current = int(self._interrupts.get())
        fresh = [(event, message) for event, message, epoch in taken if epoch == current]
        if len(fresh) < len(taken):
            stale = [event for event, _, epoch in taken if epoch != current]
            for event in stale:
                log.debug("not acknowledging %s: delivered before the connection was interrupted; "
                          "the broker redelivers it", event.message_id)
            if self._batch is not None:
                self._batch.forget([event.delivery_tag for event in stale])
        try:
            if self._batch is not None:
                self._batch.ack_all([event.delivery_tag for event, _ in fresh])
            else:
                for event, message in fresh:
                    what = event.message_id
                    message.acknowledge()
        except _java().JException as exc:
            raise self._runtime_error(f"ack of {what} failed", exc) from exc

    def send(self, destination: Destination, body: bytes, *, persistent: bool = False) -> None:
        """Publish ``body`` as a TextMessage (it must be UTF-8) to ``destination``.

        While failover reconnects this waits up to ``connect_timeout`` for the connection.

        Raises:
            MessageError: ``body`` is not UTF-8.
            ConnectionLostError: The connection is gone, or did not come back in time.
            TransportError: The broker refused the message.
        """
        self._check()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MessageError(f"cannot send a body that is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
        self._sync()
        java = _java()
        try:
            if self._send_session is None:
                self._send_session = self._connection.createSession(False, AUTO_ACKNOWLEDGE)
            producer = self._producers.get(destination)
            if producer is None:
                target = _java_destination(self._send_session, destination)
                producer = self._producers[destination] = self._send_session.createProducer(target)
            mode = java.PERSISTENT if persistent else java.NON_PERSISTENT
            producer.send(self._send_session.createTextMessage(text), mode, 4, 0)  # priority 4, no expiry
        except java.JException as exc:
            raise self._runtime_error(f"send to {destination} failed", exc) from exc

    def close(self) -> None:
        """Close the connection (never the JVM, which cannot restart); safe to call twice, never raises."""
        with self._state:
            connection, self._connection = self._connection, None
            was_up, self._reported_up = self._reported_up, False
            self._failover = self._interrupts = self._lost = None
        self._session = self._send_session = self._consumer = self._batch = None
        self._producers.clear()
        self._unacked.clear()
        _open.discard(self)
        if connection is not None:
            _close_quietly(connection)
            if was_up:
                self._notify(False, "closed")

    def _sync(self) -> bool:
        """Report state changes to the hooks (once each) and return whether the connection is up."""
        failover, interrupts = self._failover, self._interrupts
        if failover is None:
            return False
        epoch = int(interrupts.get())
        up = bool(failover.isConnected())
        where = failover.getConnectedTransportURI() if up else None
        changes: list[tuple[bool, str]] = []
        with self._state:
            if self._failover is not failover:  # closed meanwhile
                return False
            if epoch != self._epoch:
                self._note_drops(epoch - self._epoch)
                self._epoch = epoch
                if self._reported_up:
                    changes.append((False, "connection interrupted; failover reconnects"))
                    self._reported_up = False
            if self._lost is not None:
                up = False
                if self._reported_up:
                    changes.append((False, self._lost))
                    self._reported_up = False
            if up and where is not None and not self._reported_up:
                changes.append((True, shown([str(where)])))
                self._reported_up = True
        for change in changes:
            self._notify(*change)
        return up and where is not None

    def _note_drops(self, count: int) -> None:
        """Give up on a connection that keeps dropping: FLAP_LIMIT interruptions in FLAP_WINDOW s.

        The case it is for: when another connection holds our client id (a second process with
        the same id, after a broker restart), the broker refuses failover's reconnection and
        closes it 2 s later, failover reconnects, and so on forever without a message. A fresh
        connection makes the refusal visible: its connect() raises ClientIdInUseError. (Failover
        reconnecting while the broker still holds our own stalled connection is fine: it reuses
        the connection's id, and the broker replaces the stale one.) Called with the lock held.
        """
        now = time.monotonic()
        self._drops.extend([now] * count)
        while self._drops and now - self._drops[0] > FLAP_WINDOW:
            self._drops.popleft()
        if len(self._drops) >= FLAP_LIMIT and self._lost is None:
            self._lost = (f"the connection dropped {len(self._drops)} times within {FLAP_WINDOW:g} s (is another "
                          f"connection holding connection id {self.config.subscription.connection_id!r}?)")

    def _check(self) -> None:
        if self._lost is not None:
            self._sync()
            raise ConnectionLostError(f"connection to the broker lost: {self._lost}")
        if self._connection is None:
            raise TransportError("not connected; call connect() first")

    def _event(self, message: Any, epoch: int) -> Event:
        """Turn one javax.jms.Message into an Event, keeping the message for ack()."""
        kind = self._kinds.get(type(message))
        if kind is None:
            kind = self._kinds[type(message)] = next(
                (name for name, cls in _java().kinds if isinstance(message, cls)), "Message")
        self._next_tag += 1
        self._unacked[self._next_tag] = (message, epoch)
        stamp = message.getJMSTimestamp()
        fields: dict[str, Any] = dict(
            message_id=str(message.getJMSMessageID()), destination=self._destination,
            timestamp=int(stamp) or None, redelivered=bool(message.getJMSRedelivered()),
            transport=self.name, delivery_tag=self._next_tag)
        props = _properties(message)
        if props:
            fields["headers"] = fields["properties"] = props
        if kind == "TextMessage":
            text = message.getText()
            try:
                body = b"" if text is None else str(text).encode("utf-8", "surrogatepass")
            except UnicodeError:  # an unpaired UTF-16 surrogate; Java's encoder writes '?' for it
                body = bytes(text.getBytes(_java().UTF_8))
                return Event(body=body, data=None, problem="text body holds an unpaired UTF-16 surrogate", **fields)
        elif kind == "BytesMessage":
            buffer = _java().ByteArray(int(message.getBodyLength()))
            message.readBytes(buffer)
            body = bytes(buffer)
        elif kind == "ObjectMessage":  # deserializing would run the sender's classes: never
            return Event(body=b"", data=None, problem="ObjectMessage refused (never deserialized)", **fields)
        else:
            return Event(body=b"", data=None, problem=f"unsupported JMS {kind}: only text and bytes "
                         "messages carry events", **fields)
        return make_event(body, self.config.max_message_bytes, **fields)

    def _on_exception(self, reason: str, fatal: bool) -> None:
        """The connection's ExceptionListener, on a Java thread: only records; _sync() reports."""
        if not fatal:
            log.warning("broker reported an error: %s", reason)
        elif self._connection is not None and self._lost is None:
            self._lost = reason
            log.debug("connection to the broker lost: %s", reason)

    def _notify(self, up: bool, detail: str) -> None:
        try:
            if up:
                self.hooks.on_connected(self.name, detail)
            else:
                self.hooks.on_disconnected(self.name, detail)
        except Exception:  # a failing hook must not break the transport
            log.exception("%s hook failed", "on_connected" if up else "on_disconnected")

    def _tls_cause(self, exc: Any) -> str | None:
        """``TLS: <cause>`` from ``exc``, else from a handshake of our own with the first TLS URL
        (:func:`bridge.tls.java_probe`): the client's own error often says only that the socket closed."""
        cause = tls.describe_java_exception(exc)
        if cause is None or cause.startswith(tls.GENERIC):
            cause = self._probe() or cause
        return cause

    def _probe(self) -> str | None:
        cfg = self.config
        target = first_tls_host(cfg.openwire.urls)
        if target is None:
            return None
        try:
            context = tls.java_ssl_context(cfg.openwire.tls)
        except ConfigError:
            return None
        settings = cfg.openwire.tls
        return tls.java_probe(context, *target, verify_hostname=settings.verify_hostname and not settings.insecure,
                              timeout=min(5.0, cfg.connect_timeout))

    def _connect_error(self, exc: Any, endpoint: str) -> TransportError:
        java, cause = _java(), self._redact(jvm.describe(exc))
        secure = self._tls_cause(exc) if uses_tls(self.config.openwire.urls) else None
        if secure is not None:
            return ConnectError(f"cannot connect to {endpoint}: {self._redact(secure)}")
        for link in jvm.causes(exc):
            if isinstance(link, java.InvalidClientID):
                return ClientIdInUseError(self.config.subscription.connection_id)
            if isinstance(link, (java.JMSSecurity, java.Security)):
                return AuthenticationError(f"{endpoint} refused user {self.config.credentials.username!r}: {cause}")
        return ConnectError(f"cannot connect to {endpoint}: {cause}")

    def _runtime_error(self, what: str, exc: Any) -> TransportError:
        cause = self._redact(jvm.describe(exc))
        if self._lost is not None or any(isinstance(link, _java().Lost) for link in jvm.causes(exc)):
            return ConnectionLostError(f"{what}: connection lost ({self._lost or cause})")
        return TransportError(f"{what}: {cause}")

    def _redact(self, text: str) -> str:
        password = self.config.credentials.password
        return text.replace(password, "***") if password else text


def _deepest_message(exc: Any) -> str:
    """ActiveMQ's reason for refusing a selector: the message of the deepest cause (the
    InvalidSelectorException itself says only the selector again)."""
    return " ".join(str(jvm.causes(exc)[-1].getMessage() or jvm.describe(exc)).split())


def _java_destination(session: Any, destination: Destination) -> Any:
    if destination.kind == "topic":
        return session.createTopic(destination.name)
    return session.createQueue(destination.name)


def _properties(message: Any) -> dict[str, Any]:
    """A javax.jms.Message's properties as :mod:`bridge.properties` describes them (the path
    without the helper jar; the helper's Properties.java does the same in Java)."""
    props = {str(name): _java_value(value) for name, value in message.getProperties().items()}  # {} at once if none
    kind, correlation = message.getJMSType(), message.getJMSCorrelationID()
    priority, expiration = int(message.getJMSPriority()), int(message.getJMSExpiration())
    if not props and kind is None and correlation is None and priority == properties.DEFAULT_PRIORITY \
            and expiration == 0:
        return {}
    if kind is not None:
        props[properties.JMS_TYPE] = str(kind)
    if correlation is not None:
        props[properties.JMS_CORRELATION_ID] = str(correlation)
    props[properties.JMS_PRIORITY] = priority
    props[properties.JMS_DELIVERY_MODE] = (properties.PERSISTENT if int(message.getJMSDeliveryMode()) ==
                                           int(_java().PERSISTENT) else properties.NON_PERSISTENT)
    props[properties.JMS_EXPIRATION] = expiration
    return props


def _java_value(value: Any) -> Any:
    """A property value from JPype as a JSON value (as Properties.java writes it)."""
    import jpype

    if value is None:
        return None
    name = str(value.getClass().getSimpleName()) if isinstance(value, jpype.JObject) else ""
    if name == "Boolean":
        return bool(value.booleanValue())
    if name in ("Byte", "Short", "Integer", "Long"):
        return int(value.longValue())
    if name in ("Float", "Double"):
        return properties.json_value(float(str(value.toString())))  # Java's text: 0.1f is 0.1
    if name == "byte[]":
        return properties.json_value(bytes(value))
    return properties.json_value(str(value))


def _close_quietly(connection: Any, wait: float = CLOSE_WAIT) -> None:
    """Close ``connection``, waiting at most ``wait`` seconds; the rest finishes in the background.

    Closing can block: failover holds its lock while it sleeps between reconnection attempts
    (up to ``reconnect.max_delay``), and a write to a stalled peer waits for the inactivity
    monitor. The broker redelivers whatever the connection had not acknowledged.
    """
    def close() -> None:
        try:
            connection.close()
        except Exception as exc:
            log.warning("closing the OpenWire connection failed: %s",
                        jvm.describe(exc) if hasattr(exc, "getCause") else exc)

    closer = threading.Thread(target=close, name="amq-bridge openwire close", daemon=True)
    closer.start()
    closer.join(wait)
    if closer.is_alive():
        log.info("closing the OpenWire connection takes more than %g s; it goes on in the background", wait)


def _wake(connection: Any, flag: threading.Event, seconds: float) -> None:
    """connect()'s watchdog: make the call blocked in start() fail now."""
    flag.set()
    try:
        channel = connection.getTransportChannel()
        # Failover holds its lock while a socket waits for the peer's wire format: stop that
        # socket, then fail the pending request (which wakes whoever waits for its answer).
        inner = channel.narrow(_java().Negotiator)
        if inner is not None:
            inner.stop()
        channel.onException(_java().IOError(f"no answer within {seconds:g} s"))
    except Exception as exc:
        log.debug("waking a connection attempt that timed out failed: %s", exc)


def _close_all() -> None:
    """At exit, close what the program left open, so the broker frees the connection id now
    rather than after its inactivity timeout. Registered after JPype's exit handler: runs before it."""
    for transport in list(_open):
        transport.close()


@functools.cache
def _java() -> types.SimpleNamespace:
    """The Java classes used here, loaded once the JVM is up (they cannot be imported before)."""
    import jpype
    from jpype import JArray, JByte, JClass

    @jpype.JImplements("javax.jms.ExceptionListener")
    class Listener:
        """Reports connection failures to a transport, without keeping it alive."""

        def __init__(self, transport: "weakref.ref[OpenWireTransport]") -> None:
            self.transport = transport

        @jpype.JOverride
        def onException(self, exc: Any) -> None:  # noqa: N802 - Java's name
            transport = self.transport()
            if transport is not None:  # transport failures carry an IOException; others are reports
                lost = any(isinstance(link, java.IOError) for link in jvm.causes(exc))
                transport._on_exception(transport._redact(jvm.describe(exc)), lost)

    event_handler = JClass("java.beans.EventHandler")
    transport_listener = JClass("org.apache.activemq.transport.TransportListener")

    def counting(method: str, counter: Any) -> Any:
        """A TransportListener, all Java, whose ``method`` increments ``counter``; the rest do nothing."""
        return event_handler.create(transport_listener, counter, "incrementAndGet", None, method)

    mode = JClass("javax.jms.DeliveryMode")
    java = types.SimpleNamespace(
        JException=jpype.JException, Listener=Listener, ByteArray=JArray(JByte), counting=counting,
        Factory=JClass("org.apache.activemq.ActiveMQConnectionFactory"),
        ConnectionFactory=JClass("javax.jms.ConnectionFactory"),
        Connection=JClass("org.apache.activemq.ActiveMQConnection"),
        SslContext=JClass("org.apache.activemq.broker.SslContext"),
        Failover=JClass("org.apache.activemq.transport.failover.FailoverTransport"),
        AtomicInteger=JClass("java.util.concurrent.atomic.AtomicInteger"),
        ArrayList=JClass("java.util.ArrayList"),
        Negotiator=JClass("org.apache.activemq.transport.WireFormatNegotiator"),
        PERSISTENT=mode.PERSISTENT, NON_PERSISTENT=mode.NON_PERSISTENT,
        UTF_8=JClass("java.nio.charset.StandardCharsets").UTF_8, IOError=JClass("java.io.IOException"),
        JMSSecurity=JClass("javax.jms.JMSSecurityException"), Security=JClass("java.lang.SecurityException"),
        InvalidClientID=JClass("javax.jms.InvalidClientIDException"),
        InvalidSelector=JClass("javax.jms.InvalidSelectorException"),
        InvalidDestination=JClass("javax.jms.InvalidDestinationException"),
        kinds=[(name, JClass(f"javax.jms.{name}")) for name in
               ("TextMessage", "BytesMessage", "ObjectMessage", "MapMessage", "StreamMessage")])
    # After these, an operation on an established connection means the connection is gone.
    java.Lost = (java.IOError, JClass("javax.jms.IllegalStateException"),
                 JClass("org.apache.activemq.ConnectionFailedException"))
    atexit.register(_close_all)
    return java
