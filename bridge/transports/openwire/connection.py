"""Opening and closing one JMS connection over failover, within a time limit.

:func:`establish` builds the factory, makes the connection with the TLS context current, gives it
the listeners that follow its state, registers the client id and starts it; a watchdog bounds the
start. :func:`close_quietly` closes without waiting longer than it may. Connections left open are
closed at interpreter exit (:func:`close_all`), so the broker frees their ids at once.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any, NamedTuple

from bridge import jvm, tls
from bridge.errors import ConfigError, ConnectError, TransportUnavailableError
from bridge.transports.openwire import batch
from bridge.transports.openwire.errors import connect_error
from bridge.transports.openwire.factory import make_factory, tune
from bridge.transports.openwire.java import CLIENT_ACKNOWLEDGE, INDIVIDUAL_ACKNOWLEDGE, classes
from bridge.transports.openwire.tlsprobe import tls_cause
from bridge.transports.openwire.url import broker_url, uses_tls

if TYPE_CHECKING:
    from bridge.config import BridgeConfig
    from bridge.transports.openwire.state import ConnectionState
    from bridge.transports.openwire.transport import OpenWireTransport

log = logging.getLogger(__name__)

CLOSE_WAIT = 5.0  # seconds close() waits for the Java side; see close_quietly
_open: "weakref.WeakSet[OpenWireTransport]" = weakref.WeakSet()  # see close_all


class Opened(NamedTuple):
    """What :func:`establish` made: the started connection and what the transport keeps of it."""

    connection: Any  # org.apache.activemq.ActiveMQConnection
    session: Any  # the consumer's javax.jms.Session
    failover: Any  # org.apache.activemq.transport.failover.FailoverTransport
    interrupts: Any  # java.util.concurrent.atomic.AtomicInteger: failover's interruptions
    cumulative: bool  # the session acknowledges cumulatively (CLIENT_ACKNOWLEDGE)


def establish(config: "BridgeConfig", timeout: float, endpoint: str, state: "ConnectionState") -> Opened:
    """Connect, authenticate and register the client id within about ``timeout`` seconds.

    ``state`` gets the connection's ExceptionListener (held weakly).

    Raises:
        ConnectError, AuthenticationError, ClientIdInUseError: as OpenWireTransport.connect().
    """
    cfg, ms, java = config, max(1000, int(timeout * 1000)), classes()
    tls_config = cfg.openwire.tls
    secure = uses_tls(cfg.openwire.urls)
    try:
        ssl_context = tls.java_ssl_context(tls_config) if secure else None
    except ConfigError as exc:
        raise ConfigError(exc.reason, source=cfg.source, key=exc.key) from None
    if secure and tls_config.insecure:
        tls.warn_insecure("openwire", endpoint)
    factory = make_factory(cfg, broker_url(cfg.openwire.urls, timeout, heartbeat_ms=cfg.openwire.heartbeat_ms,
                                           reconnect=cfg.reconnect,
                                           verify_hostname=tls_config.verify_hostname and not tls_config.insecure))
    if isinstance(factory, java.Factory):
        tune(factory, cfg, ms)
    connection, watchdog, timed_out = None, None, threading.Event()
    interrupts = java.AtomicInteger()
    try:
        connection = create_connection(factory, ssl_context, cfg)
        # Failover retries and silent peers can outlast every URL option: the watchdog
        # wakes start() from another thread when the time is up.
        watchdog = threading.Timer(timeout + 0.5, wake, (connection, timed_out, timeout))
        watchdog.daemon = True
        watchdog.start()
        connection.addTransportListener(java.counting("transportInterupted", interrupts))
        connection.setExceptionListener(java.Listener(weakref.ref(state)))
        connection.setClientID(cfg.subscription.connection_id)
        connection.start()
        # CLIENT_ACKNOWLEDGE with the helper (one ranged acknowledgement per batch: see batch),
        # else INDIVIDUAL_ACKNOWLEDGE.
        cumulative = batch.available()
        session = connection.createSession(False, CLIENT_ACKNOWLEDGE if cumulative else INDIVIDUAL_ACKNOWLEDGE)
        failover = connection.getTransport().narrow(java.Failover)
    except BaseException as exc:
        if connection is not None:  # after a time-out, closing may wait as long again
            close_quietly(connection, 0 if timed_out.is_set() else CLOSE_WAIT)
        if not isinstance(exc, java.JException):
            raise
        if timed_out.is_set():
            cause = tls_cause(exc, cfg) if secure else None
            raise ConnectError(f"cannot connect to {endpoint}: {cause or f'no answer within {timeout:g} s'}") from exc
        raise connect_error(exc, endpoint, cfg) from exc
    finally:
        if watchdog is not None:
            watchdog.cancel()
    return Opened(connection, session, failover, interrupts, cumulative)


def create_connection(factory: Any, ssl_context: Any, config: "BridgeConfig") -> Any:
    """``factory.createConnection()`` with ``ssl_context`` current: failover keeps the SslContext
    current on this thread when it is created and uses it for every (re)connection."""
    java, creds = classes(), config.credentials
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
        close_quietly(connection)
        raise TransportUnavailableError(
            f"openwire.connection_factory {config.openwire.connection_factory} made a "
            f"{connection.getClass().getName()}, not an ActiveMQConnection; amq-bridge needs ActiveMQ's client")
    return connection


def close_quietly(connection: Any, wait: float = CLOSE_WAIT) -> None:
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


def wake(connection: Any, flag: threading.Event, seconds: float) -> None:
    """establish()'s watchdog: make the call blocked in start() fail now."""
    flag.set()
    try:
        channel = connection.getTransportChannel()
        # Failover holds its lock while a socket waits for the peer's wire format: stop that
        # socket, then fail the pending request (which wakes whoever waits for its answer).
        inner = channel.narrow(classes().Negotiator)
        if inner is not None:
            inner.stop()
        channel.onException(classes().IOError(f"no answer within {seconds:g} s"))
    except Exception as exc:
        log.debug("waking a connection attempt that timed out failed: %s", exc)


def track(transport: "OpenWireTransport", is_open: bool) -> None:
    """Note that ``transport`` holds an open connection (or no longer does), for :func:`close_all`."""
    if is_open:
        _open.add(transport)
    else:
        _open.discard(transport)


def close_all() -> None:
    """At exit, close what the program left open, so the broker frees the connection id now
    rather than after its inactivity timeout. Registered after JPype's exit handler: runs before it."""
    for transport in list(_open):
        transport.close()
