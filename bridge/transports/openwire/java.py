"""The Java side of the OpenWire transport: the classes it uses, loaded once the JVM is up.

JPype classes cannot be imported before the JVM runs, so :func:`classes` loads them on first
use (and is cached); the ``ExceptionListener`` and ``TransportListener`` the connection is given
are made here too.
"""

from __future__ import annotations

import atexit
import functools
import types
import weakref
from typing import TYPE_CHECKING, Any

from bridge import jvm

if TYPE_CHECKING:
    from bridge.config import Destination
    from bridge.transports.openwire.state import ConnectionState

INDIVIDUAL_ACKNOWLEDGE = 4  # org.apache.activemq.ActiveMQSession.INDIVIDUAL_ACKNOWLEDGE
CLIENT_ACKNOWLEDGE = 2  # javax.jms.Session.CLIENT_ACKNOWLEDGE
AUTO_ACKNOWLEDGE = 1  # javax.jms.Session.AUTO_ACKNOWLEDGE: the send session only


def jms_destination(session: Any, destination: "Destination") -> Any:
    """The javax.jms.Queue or Topic of ``destination`` on ``session``."""
    if destination.kind == "topic":
        return session.createTopic(destination.name)
    return session.createQueue(destination.name)


@functools.cache
def classes() -> types.SimpleNamespace:
    """The Java classes used here, loaded once the JVM is up (they cannot be imported before)."""
    import jpype
    from jpype import JArray, JByte, JClass

    from bridge.transports.openwire.connection import close_all

    @jpype.JImplements("javax.jms.ExceptionListener")
    class Listener:
        """Reports connection failures to a transport's state, without keeping it alive."""

        def __init__(self, state: "weakref.ref[ConnectionState]") -> None:
            self.state = state

        @jpype.JOverride
        def onException(self, exc: Any) -> None:  # noqa: N802 - Java's name
            state = self.state()
            if state is not None:  # transport failures carry an IOException; others are reports
                lost = any(isinstance(link, java.IOError) for link in jvm.causes(exc))
                state.on_exception(state.redact(jvm.describe(exc)), lost)

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
    atexit.register(close_all)
    return java
