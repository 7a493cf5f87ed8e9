"""What the OpenWire transport knows of its connection, and how it reports changes to the hooks.

How the connection state is followed: a ``TransportListener`` made by ``java.beans.EventHandler``
counts failover's interruptions in a Java ``AtomicInteger``, and failover says whether it is
connected. No Python runs on ActiveMQ's threads for that (a Python listener is called for every
command received, which halved throughput); ``receive()`` and ``send()`` read the state
(:meth:`ConnectionState.sync`) and report its changes to the hooks on the caller's thread, so a
hook runs at most ``receive()``'s timeout late. The count is the *epoch* of each delivery.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from bridge.errors import ConnectionLostError, TransportError
from bridge.transports.openwire.errors import redact
from bridge.transports.openwire.url import shown

if TYPE_CHECKING:
    from bridge.config import BridgeConfig
    from bridge.transports.base import Hooks
    from bridge.transports.openwire.connection import Opened

log = logging.getLogger(__name__)

#: This many interruptions within FLAP_WINDOW seconds and the connection counts as lost; see note_drops.
FLAP_LIMIT, FLAP_WINDOW = 3, 60.0


class ConnectionState:
    """One transport's connection: its JMS objects, its epoch, whether it is lost, what the hooks heard."""

    def __init__(self, name: str, config: "BridgeConfig", hooks: "Hooks") -> None:
        self.name, self.config, self.hooks = name, config, hooks
        self.connection: Any = None
        self.failover: Any = None  # org.apache.activemq.transport.failover.FailoverTransport
        self.interrupts: Any = None  # java.util.concurrent.atomic.AtomicInteger
        self.session: Any = None
        self.lost: str | None = None  # set (on a Java thread) once the connection is gone for good
        self.lock = threading.Lock()  # guards the three below; never held across a Java call
        self.epoch = 0  # interruptions seen so far
        self.drops: collections.deque[float] = collections.deque()  # when recent ones were seen
        self.reported_up = False  # what the hooks were last told

    def attach(self, opened: "Opened") -> None:
        """Follow the connection ``opened`` from now on."""
        with self.lock:
            self.connection, self.session, self.failover, self.interrupts = (
                opened.connection, opened.session, opened.failover, opened.interrupts)
            self.lost, self.epoch, self.reported_up = None, int(opened.interrupts.get()), False
            self.drops.clear()

    def detach(self) -> tuple[Any, bool]:
        """Forget the connection; returns it (None if there was none) and whether the hooks saw it up."""
        with self.lock:
            connection, self.connection = self.connection, None
            was_up, self.reported_up = self.reported_up, False
            self.failover = self.interrupts = self.lost = None
        self.session = None
        return connection, was_up

    def check(self) -> None:
        """Raise unless the connection is usable (up, or being re-established by failover)."""
        if self.lost is not None:
            self.sync()
            raise ConnectionLostError(f"connection to the broker lost: {self.lost}")
        if self.connection is None:
            raise TransportError("not connected; call connect() first")

    def sync(self) -> bool:
        """Report state changes to the hooks (once each) and return whether the connection is up."""
        failover, interrupts = self.failover, self.interrupts
        if failover is None:
            return False
        epoch = int(interrupts.get())
        up = bool(failover.isConnected())
        where = failover.getConnectedTransportURI() if up else None
        changes: list[tuple[bool, str]] = []
        with self.lock:
            if self.failover is not failover:  # closed meanwhile
                return False
            if epoch != self.epoch:
                self.note_drops(epoch - self.epoch)
                self.epoch = epoch
                if self.reported_up:
                    changes.append((False, "connection interrupted; failover reconnects"))
                    self.reported_up = False
            if self.lost is not None:
                up = False
                if self.reported_up:
                    changes.append((False, self.lost))
                    self.reported_up = False
            if up and where is not None and not self.reported_up:
                changes.append((True, shown([str(where)])))
                self.reported_up = True
        for change in changes:
            self.notify(*change)
        return up and where is not None

    def note_drops(self, count: int) -> None:
        """Give up on a connection that keeps dropping: FLAP_LIMIT interruptions in FLAP_WINDOW s.

        The case it is for: when another connection holds our client id (a second process with
        the same id, after a broker restart), the broker refuses failover's reconnection and
        closes it 2 s later, failover reconnects, and so on forever without a message. A fresh
        connection makes the refusal visible: its connect() raises ClientIdInUseError. (Failover
        reconnecting while the broker still holds our own stalled connection is fine: it reuses
        the connection's id, and the broker replaces the stale one.) Called with the lock held.
        """
        now = time.monotonic()
        self.drops.extend([now] * count)
        while self.drops and now - self.drops[0] > FLAP_WINDOW:
            self.drops.popleft()
        if len(self.drops) >= FLAP_LIMIT and self.lost is None:
            self.lost = (f"the connection dropped {len(self.drops)} times within {FLAP_WINDOW:g} s (is another "
                         f"connection holding connection id {self.config.subscription.connection_id!r}?)")

    def on_exception(self, reason: str, fatal: bool) -> None:
        """The connection's ExceptionListener, on a Java thread: only records; sync() reports."""
        if not fatal:
            log.warning("broker reported an error: %s", reason)
        elif self.connection is not None and self.lost is None:
            self.lost = reason
            log.debug("connection to the broker lost: %s", reason)

    def notify(self, up: bool, detail: str) -> None:
        """Tell the hooks the connection is up (at ``detail``) or down (``detail`` says why)."""
        try:
            if up:
                self.hooks.on_connected(self.name, detail)
            else:
                self.hooks.on_disconnected(self.name, detail)
        except Exception:  # a failing hook must not break the transport
            log.exception("%s hook failed", "on_connected" if up else "on_disconnected")

    def redact(self, text: str) -> str:
        """``text`` without the password."""
        return redact(text, self.config)
