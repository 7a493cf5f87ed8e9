"""The STOMP transport (stomp.py); see :mod:`.transport`.

Modules: ``transport`` (the class), ``connect`` (one host: socket, TLS, CONNECT), ``link`` (one
connection's state, on stomp.py's threads), ``frames`` (ACK frames, one write per batch),
``errors`` (refusals and TLS alerts translated), ``reader`` (the fast path for MESSAGE frames).
Importing this never imports JPype.
"""

from bridge.transports.stomp.transport import StompTransport

__all__ = ["StompTransport"]
