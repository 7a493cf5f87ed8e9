"""Counters of one bridge run, and the stats line printed every few seconds."""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from bridge.event import Event

#: Upper bounds (seconds) of the buckets of the event age histogram.
AGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
_timestamp = attrgetter("timestamp")


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
    #: Age in seconds (commit time minus broker timestamp) of the newest event of the last
    #: delivered batch, at its commit; negative when the broker's clock is ahead. None before one.
    event_age: float | None = None
    #: Events of the batch in hand (received, not yet acknowledged), and the broker timestamp
    #: (ms since the epoch) of its first event, or None.
    in_hand: int = 0
    in_hand_timestamp: int | None = None
    #: Event ages at commit: events with a broker timestamp, the sum of their ages (negative ones
    #: count as 0), and per bound of AGE_BUCKETS how many were at most that old (cumulative).
    ages_count: int = 0
    ages_sum: float = 0.0
    ages_le: list[int] = field(default_factory=lambda: [0] * len(AGE_BUCKETS))
    #: Whether the last receive filled a whole batch (more events are likely waiting).
    backlog: bool = False
    started: float = field(default_factory=time.monotonic)
    _last_time: float = field(default_factory=time.monotonic)
    _last_acked: int = 0

    @property
    def handled(self) -> int:
        """Events finished with: delivered or set aside."""
        return self.delivered + self.dead_lettered

    @property
    def waiting(self) -> bool:
        """Whether events wait for the sink: a batch in hand, or the last receive was a full batch."""
        return self.in_hand > 0 or self.backlog

    def took(self, events: Sequence["Event"], limit: int) -> None:
        """Note a batch received (possibly empty) of at most ``limit`` events."""
        self.in_hand, self.backlog = len(events), len(events) >= limit
        self.in_hand_timestamp = events[0].timestamp if events else None

    def record_ages(self, events: Sequence["Event"], now: float) -> None:
        """Note the age at ``now`` (the sink's commit, epoch seconds) of each event delivered.

        Per batch: the timestamps are sorted (already in order, mostly: a linear pass in C), and
        each bucket's count is found by bisection, so the per-event cost is a few C-level steps.
        """
        stamps = sorted(filter(None, map(_timestamp, events)))
        if not stamps:
            return
        now_ms = now * 1000.0
        count, newest = len(stamps), stamps[-1]
        past = bisect_right(stamps, now_ms)  # stamps from the future (clock skew) count as age 0
        total = (past * now_ms - sum(stamps if past == count else stamps[:past])) / 1000.0
        le = self.ages_le
        for i, bound in enumerate(AGE_BUCKETS):
            le[i] += count - bisect_left(stamps, now_ms - bound * 1000.0)
        self.ages_count += count
        self.ages_sum += total
        self.event_age = (now_ms - newest) / 1000.0

    def lag(self, now: float | None = None) -> float | None:
        """How far behind the feed the sink is, in seconds (None before an event with a timestamp).

        While a batch is in hand: the age now of its first event (it grows while the sink is slow
        or stalled); otherwise the age of the last delivered batch's newest event at its commit.
        """
        stamp = self.in_hand_timestamp
        if stamp and self.in_hand:
            return (time.time() if now is None else now) - stamp / 1000.0
        return self.event_age

    def behind(self, max_age: float | None) -> bool:
        """Whether events wait and the sink is more than ``max_age`` seconds behind (see :meth:`lag`)."""
        if max_age is None or not self.waiting:
            return False
        lag = self.lag()
        return lag is not None and lag > max_age

    def line(self) -> str:
        """One stats line; the rate is over the time since the previous line."""
        now = time.monotonic()
        elapsed = max(now - self._last_time, 1e-9)
        rate = (self.acknowledged - self._last_acked) / elapsed
        self._last_time, self._last_acked = now, self.acknowledged
        return (
            f"stats: {rate:.0f} events/s, received={self.received} delivered={self.delivered} "
            f"dead_lettered={self.dead_lettered} acked={self.acknowledged} duplicates={self.duplicates} "
            f"sink_writes={self.sink_writes} age={_seconds(self.lag())} "
            f"transport={self.transport or '-'} connected={'yes' if self.connected else 'no'} "
            f"uptime={now - self.started:.0f}s"
        )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"
