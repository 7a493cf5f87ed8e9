"""Opening one STOMP connection to one host: socket, TLS, stomp.py's connection, CONNECT."""

from __future__ import annotations

import socket
import ssl
from time import monotonic
from typing import TYPE_CHECKING, Any

import stomp
from stomp.exception import StompException

from bridge.errors import ConnectError
from bridge.transports.stomp.errors import raise_refusal, raise_tls_refusal
from bridge.transports.stomp.frames import shown
from bridge.transports.stomp.link import Link

if TYPE_CHECKING:
    from bridge.transports.stomp.transport import StompTransport


def open_link(owner: "StompTransport", host: str, port: int, timeout: float) -> Link:
    """Connect to ``host:port`` and send CONNECT; the link once the broker answered CONNECTED.

    Raises:
        ConnectError: No connection, no answer within ``timeout`` seconds, a TLS failure, a refusal.
        AuthenticationError: The broker refused the credentials.
        ClientIdInUseError: Another connection holds the connection id.
    """
    endpoint, deadline = shown(host, port), monotonic() + timeout
    owner.hooks.on_connecting(owner.name, endpoint)
    # stomp.py's connect loop retries, sleeps and logs the cause away; it skips the loop when
    # transport.socket is set (if that changes: one attempt, no sleep, still within timeout).
    try:
        sock = socket.create_connection((host, port), timeout)
        if owner.config.stomp.tls.enabled:  # raises ConnectError naming the TLS cause
            from bridge import tls
            sock = tls.wrap(sock, host, owner.config.stomp.tls, max(0.1, deadline - monotonic()), endpoint=endpoint)
        sock.settimeout(None)
    except OSError as exc:
        raise ConnectError(f"{endpoint} ({exc.strerror or str(exc) or type(exc).__name__})") from exc
    beat = owner.config.stomp.heartbeat_ms
    conn = stomp.StompConnection12(
        [(host, port)], prefer_localhost=False, try_loopback_connect=False, reconnect_attempts_max=1,
        reconnect_sleep_initial=0, timeout=timeout, heartbeats=(beat, beat), auto_decode=False)
    conn.transport.socket, conn.transport.current_host_and_port = sock, (host, port)
    if isinstance(sock, ssl.SSLSocket):
        _single_io_thread(conn.transport, sock)
    link = Link(owner, conn, endpoint)
    conn.set_listener("amq-bridge", link)
    creds = owner.config.credentials
    try:
        conn.connect(username=creds.username or None, passcode=creds.password if creds.username else None,
                     headers={"client-id": owner.config.subscription.connection_id}, with_connect_command=True)
        link.answered.wait(max(0.0, deadline - monotonic()))
    except (StompException, OSError) as exc:
        link.shutdown(0)
        raise_tls_refusal(link, host)
        raise ConnectError(f"{endpoint} ({str(exc) or type(exc).__name__})") from exc
    if link.up:
        return link
    closed = link.gone.is_set()
    link.shutdown(0)
    if link.refusal is None:
        raise_tls_refusal(link, host)
        why = "closed the connection" if closed else f"did not answer CONNECT within {timeout:.1f}s"
        raise ConnectError(f"{endpoint} {why} (is it a STOMP port?)")
    raise_refusal(link, creds, owner.config.subscription.connection_id)


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
