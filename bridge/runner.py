"""The runner: takes events from a transport, delivers them to a sink, then acknowledges them.

An event is acknowledged only after the sink's ``flush`` returned (or, for an event that cannot
be decoded, after the dead-letter file was fsynced). A failure in between leaves it
unacknowledged, so the broker delivers it again.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Sequence

from bridge.config import BridgeConfig
from bridge.connection import open_transport
from bridge.deadletter import DeadLetterFile
from bridge.event import Event
from bridge.sinks import Sink, create_sink
from bridge.stats import Stats
from bridge.transports import Hooks, Transport

log = logging.getLogger(__name__)
stats_log = logging.getLogger("bridge.stats")

#: How long one receive call may block, so a stop request is seen promptly.
POLL_SECONDS = 0.5


class _RunnerHooks(Hooks):
    """Logs each state change once, keeps the stats current, and forwards to the user's hooks."""

    def __init__(self, stats: Stats, user: Hooks | None) -> None:
        self.stats, self.user = stats, user or Hooks()
        #: Set while the runner closes the transport itself, so that is not reported as a loss.
        self.closing = False

    def on_connecting(self, transport: str, endpoint: str) -> None:
        log.info("%s: connecting to %s", transport, endpoint)
        self.user.on_connecting(transport, endpoint)

    def on_connected(self, transport: str, endpoint: str) -> None:
        self.stats.transport, self.stats.connected = transport, True
        log.info("%s: connected to %s", transport, endpoint)
        self.user.on_connected(transport, endpoint)

    def on_disconnected(self, transport: str, reason: str) -> None:
        self.stats.connected = False
        level = logging.INFO if self.closing else logging.WARNING
        log.log(level, "%s: disconnected: %s", transport, reason)
        self.user.on_disconnected(transport, reason)

    def on_fallback(self, failed: str, reason: str, next_transport: str) -> None:
        self.user.on_fallback(failed, reason, next_transport)


class Runner:
    """Consume the configured subscription into a sink until stopped.

    Args:
        config: The bridge configuration.
        sink: A sink to use instead of the configured one.
        hooks: Lifecycle callbacks of the caller.
        max_events: Stop after this many events were delivered or set aside.
        idle_timeout: Stop after this many seconds without an event.
    """

    def __init__(
        self,
        config: BridgeConfig,
        *,
        sink: Sink | None = None,
        hooks: Hooks | None = None,
        max_events: int | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        self.config = config
        self.sink = sink or create_sink(config.sink)
        self.stats = Stats()
        self.hooks = _RunnerHooks(self.stats, hooks)
        self.max_events = max_events
        self.idle_timeout = idle_timeout
        self.dead_letter = DeadLetterFile(config.dead_letter)
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the run to end after the batch in hand; safe from signal handlers and threads."""
        self._stop.set()

    def run(self) -> Stats:
        """Consume until stopped, idle or done; returns the final counters.

        Raises:
            BridgeError: Connecting failed, or the sink failed (nothing unflushed was acknowledged).
        """
        self.sink.open()
        try:
            transport = open_transport(self.config, self.hooks)
            try:
                destination = self.config.subscription.destination
                transport.subscribe(destination)
                log.info("subscribed to %s as connection id %r via %s", destination,
                         self.config.subscription.connection_id, transport.name)
                self._loop(transport)
            finally:
                self.hooks.closing = True
                transport.close()
                self.stats.connected = False
        finally:
            try:
                self.sink.close()
            finally:
                self.dead_letter.close()
                stats_log.info(self.stats.line())
        return self.stats

    def _loop(self, transport: Transport) -> None:
        stats, interval = self.stats, self.config.stats_interval
        last_event = next_stats = time.monotonic()
        next_stats += interval
        while not self._stop.is_set():
            limit = self.config.batch_size
            if self.max_events is not None:
                limit = min(limit, self.max_events - stats.handled)
                if limit <= 0:
                    break
            events = transport.receive(limit, POLL_SECONDS)
            now = time.monotonic()
            if interval and now >= next_stats:
                stats_log.info(stats.line())
                next_stats = now + interval
            if events:
                last_event = now
                self._deliver(transport, events)
            elif self.idle_timeout is not None and now - last_event >= self.idle_timeout:
                log.info("no event for %.0f s; stopping", self.idle_timeout)
                break

    def _deliver(self, transport: Transport, events: Sequence[Event]) -> None:
        self.stats.received += len(events)
        good = [e for e in events if e.problem is None]
        bad = [e for e in events if e.problem is not None] if len(good) < len(events) else []
        if good:
            self.sink.write(good)
            self.sink.flush()
            self.stats.delivered += len(good)
        if bad:
            self.dead_letter.put(bad)
            self.stats.dead_lettered += len(bad)
        for event in events:
            transport.ack(event)
        self.stats.acknowledged += len(events)
