"""Test doubles for our own logic: an in-memory transport and sink that record what happened."""

from __future__ import annotations

from typing import Sequence

from bridge.errors import SinkError
from bridge.event import Event, make_event
from bridge.sinks.base import Sink
from bridge.transports.base import Transport


class MemoryTransport(Transport):
    """Serves preloaded bodies; records acks. ``log`` is shared with the sink to see the order."""

    name = "memory"

    def __init__(self, config, hooks=None, bodies: Sequence[bytes] = (), log: list | None = None) -> None:
        super().__init__(config, hooks)
        self.pending = list(bodies)
        self.acked: list[str] = []
        self.log = log if log is not None else []
        self.closed = False
        self._tag = 0

    def connect(self, timeout: float) -> None:
        self.hooks.on_connected(self.name, "memory://")

    def subscribe(self, destination, *, selector=None, durable_name=None) -> None:
        self.destination = str(destination)

    def receive(self, max_events: int, timeout: float) -> list[Event]:
        taken, self.pending = self.pending[:max_events], self.pending[max_events:]
        events = []
        for body in taken:
            self._tag += 1
            events.append(make_event(body, self.config.max_message_bytes, message_id=f"m{self._tag}",
                                     destination=self.destination, transport=self.name, delivery_tag=self._tag))
        return events

    def ack(self, event: Event) -> None:
        self.acked.append(event.message_id)
        self.log.append(("ack", event.message_id))

    def send(self, destination, body, *, persistent=False) -> None:
        self.pending.append(body)

    def close(self) -> None:
        self.closed = True

    @property
    def connected(self) -> bool:
        return not self.closed


class MemorySink(Sink):
    """Keeps written events; the first ``fail_flush`` flushes raise."""

    name = "memory"

    def __init__(self, config=None, log: list | None = None, fail_flush: int = 0) -> None:
        super().__init__(config)
        self.buffer: list[Event] = []
        self.durable: list[Event] = []
        self.log = log if log is not None else []
        self.fail_flush = fail_flush
        self.flush_calls = 0
        self.closed = False

    def write(self, events: Sequence[Event]) -> None:
        self.buffer.extend(events)

    def flush(self) -> None:
        self.flush_calls += 1
        if self.flush_calls <= self.fail_flush:
            self.buffer.clear()
            raise SinkError("disk full")
        for event in self.buffer:
            self.log.append(("durable", event.message_id))
        self.durable.extend(self.buffer)
        self.buffer.clear()

    def close(self) -> None:
        self.closed = True
