"""What the STOMP transport writes itself: ACK frames, built and escaped here and sent a batch
at a time in one write, and the names of endpoints and destinations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stomp.exception import StompException

if TYPE_CHECKING:
    from bridge.config import Destination

#: What stomp.py's own sends raise when the connection is gone: its errors, the socket's, and an
#: AttributeError when the socket became None between stomp.py's check and its write.
SEND_ERRORS = (StompException, OSError, AttributeError)

_HEADER_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", ":": "\\c"})


def ack_frame(ack_id: str) -> bytes:
    """The STOMP 1.2 ``ACK`` frame naming ``ack_id`` (header value escaped as the spec says)."""
    if "\\" in ack_id or ":" in ack_id or "\n" in ack_id or "\r" in ack_id:
        ack_id = ack_id.translate(_HEADER_ESCAPES)
    return b"ACK\nid:" + ack_id.encode() + b"\n\n\x00"


def write(conn: Any, data: bytes) -> None:
    """Send ready-made frames on stomp.py's connection, as its ``transmit`` does for one frame:
    through the receiver thread's queue when that thread does the writes (TLS), else directly.

    Raises:
        One of SEND_ERRORS: Not connected (stomp.py drops its socket when the connection closes,
            which can happen between its own check and its write: an AttributeError there).
    """
    transport = conn.transport
    if transport.blocking:
        transport.send(data)
    else:
        transport.send_queue.put(data)


def shown(host: str, port: int) -> str:
    """``HOST:PORT`` as shown to people (``[::1]:61613`` for IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def path(destination: "Destination") -> str:
    """The STOMP destination header of ``destination``: ``/queue/NAME`` or ``/topic/NAME``."""
    return f"/{destination.kind}/{destination.name}"
