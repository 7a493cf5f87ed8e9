"""Counters of one bridge run, and the stats line printed every few seconds."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class Stats:
    """What the runner has done so far."""

    #: Events taken off the broker.
    received: int = 0
    #: Events made durable in the sink.
    delivered: int = 0
    #: Events written to the dead-letter file.
    dead_lettered: int = 0
    #: Events acknowledged to the broker.
    acknowledged: int = 0
    #: Redeliveries of events already delivered, acknowledged without writing them again.
    duplicates: int = 0
    #: Connections opened again after a loss (or a refused connection id).
    reconnects: int = 0
    #: Successful sink flushes, and the seconds they took in all (write + flush).
    sink_writes: int = 0
    sink_seconds: float = 0.0
    #: False while the sink is failing and its batch is being retried.
    sink_healthy: bool = True
    #: Name of the transport in use, or "" before one connected.
    transport: str = ""
    #: Whether the transport is connected right now.
    connected: bool = False
    started: float = field(default_factory=time.monotonic)
    _last_time: float = field(default_factory=time.monotonic)
    _last_acked: int = 0

    @property
    def handled(self) -> int:
        """Events finished with: delivered or set aside."""
        return self.delivered + self.dead_lettered

    def line(self) -> str:
        """One stats line; the rate is over the time since the previous line."""
        now = time.monotonic()
        elapsed = max(now - self._last_time, 1e-9)
        rate = (self.acknowledged - self._last_acked) / elapsed
        self._last_time, self._last_acked = now, self.acknowledged
        return (
            f"stats: {rate:.0f} events/s, received={self.received} delivered={self.delivered} "
            f"dead_lettered={self.dead_lettered} acked={self.acknowledged} duplicates={self.duplicates} "
            f"sink_writes={self.sink_writes} "
            f"transport={self.transport or '-'} connected={'yes' if self.connected else 'no'} "
            f"uptime={now - self.started:.0f}s"
        )
