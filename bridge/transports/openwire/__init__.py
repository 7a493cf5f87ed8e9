"""The OpenWire transport (ActiveMQ's JMS client through JPype); see :mod:`.transport`.

Modules: ``transport`` (the class), ``connection`` (open and close, within a time limit),
``factory`` (the JMS connection factory and its settings), ``state`` (failover's epochs, the
hooks), ``receive`` (receive and acknowledge), ``send``, ``errors`` (Java exceptions translated),
``tlsprobe`` (why a TLS handshake failed), ``java`` (the Java classes), ``batch`` (the helper
jar's fast path), ``url`` (the failover URL). Importing this never imports JPype.
"""

from bridge.transports.openwire.transport import OpenWireTransport

__all__ = ["OpenWireTransport"]
