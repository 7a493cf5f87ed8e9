"""A loopback TCP proxy that can stall: stop forwarding bytes without closing anything.

``pause()`` makes both directions of every connection (and of connections accepted during the
pause) stop moving bytes: nothing is read, so the peers' socket buffers fill and TCP holds them
back, as on a network path that went silent. No FIN or RST is sent. ``resume()`` lets the held
bytes through; ``drop()`` closes the connections (new ones are still accepted); ``close()``
closes every socket. ``rate`` (bytes per second, settable at any time; None: unlimited) caps
what flows from upstream to the clients, as a slow link does.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)

POLL = 0.1


class TcpProxy:
    """Forward ``127.0.0.1:port`` to ``upstream``; threads in this process do the copying.

    Args:
        upstream: ``(host, port)`` to connect to for each accepted connection.
        port: The port to listen on; 0 picks a free one (see :attr:`port`).
        rate: At most this many bytes per second from upstream to each client (None: no cap).
    """

    def __init__(self, upstream: tuple[str, int], port: int = 0, rate: float | None = None) -> None:
        self.upstream = upstream
        self.rate = rate
        self._listener = socket.create_server(("127.0.0.1", port))
        self._listener.settimeout(POLL)
        self.port: int = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self.accepted = 0
        self._spawn(self._accept_loop, "proxy-accept")

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, the address clients connect to."""
        return f"127.0.0.1:{self.port}"

    @property
    def paused(self) -> bool:
        """Whether forwarding is stopped right now."""
        return not self._flowing.is_set()

    def pause(self) -> None:
        """Stop forwarding in both directions; every socket stays open."""
        self._flowing.clear()

    def resume(self) -> None:
        """Forward again, starting with the bytes held during the pause."""
        self._flowing.set()

    def drop(self) -> None:
        """Close every connection now, as a broker or a network path that went away; the
        listener stays, so clients can connect again."""
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # the peer sees the end now, not when a pump notices
            except OSError:
                pass
            _close(sock)

    def close(self) -> None:
        """Close the listener and every connection; safe to call twice."""
        self._closed.set()
        self._flowing.set()
        self._listener.close()
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            _close(sock)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(2)

    def __enter__(self) -> "TcpProxy":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError as exc:
                log.debug("proxy: upstream %s unreachable: %s", self.upstream, exc)
                _close(client)
                continue
            self.accepted += 1
            with self._lock:
                if self._closed.is_set():
                    _close(client)
                    _close(server)
                    return
                self._sockets.update((client, server))
            for src, dst, name in ((client, server, "up"), (server, client, "down")):
                self._spawn(self._pump, f"proxy-{name}", src, dst, name == "down")

    def _wait_flowing(self) -> bool:
        while not self._flowing.wait(POLL):
            if self._closed.is_set():
                return False
        return not self._closed.is_set()

    def _pump(self, src: socket.socket, dst: socket.socket, capped: bool = False) -> None:
        try:
            while self._wait_flowing():
                ready, _, _ = select.select([src], [], [], POLL)
                if not ready or not self._flowing.is_set():
                    continue
                rate = self.rate if capped else None
                data = src.recv(4096 if rate else 65536)
                if not data:
                    break
                if not self._wait_flowing():  # paused after the read: hold these bytes too
                    break
                dst.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
        except (OSError, ValueError):
            pass
        finally:
            with self._lock:
                self._sockets.difference_update((src, dst))
            _close(src)
            _close(dst)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
