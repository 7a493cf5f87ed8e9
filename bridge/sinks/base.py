"""The sink interface: where delivered events leave the bridge.

The runner hands a sink batches of good events, then asks it to ``flush``; only when ``flush``
returns are those events acknowledged to the broker. ``flush`` therefore means "durable by this
sink's standard" (written to the OS, or fsynced when the sink is configured so).
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from bridge.config import SinkConfig
    from bridge.event import Event


class Sink(abc.ABC):
    """A destination for events."""

    #: The name used in ``config.yaml`` under ``sink.type``.
    name: str = ""
    #: Whether :meth:`flush` spends its time outside Python (in a database library, waiting on a
    #: server), with the GIL released: the runner then flushes a batch on a thread of its own
    #: while it receives the next one. ``write`` and ``flush`` never run at the same time.
    background_flush: bool = False

    def __init__(self, config: "SinkConfig") -> None:
        self.config = config

    def open(self) -> None:
        """Acquire resources (files, connections). Called once before the first write."""

    @abc.abstractmethod
    def write(self, events: Sequence["Event"]) -> None:
        """Accept a batch of events; they may stay buffered until :meth:`flush`.

        Raises:
            SinkError: The events could not be accepted.
        """

    @abc.abstractmethod
    def flush(self) -> None:
        """Make everything written so far durable.

        Raises:
            SinkError: The events could not be made durable; none of them may be acknowledged.
        """

    def undelivered(self, events: Sequence["Event"]) -> Sequence["Event"]:
        """Of a batch whose write was given up on, the events not delivered (to be set aside).

        The runner asks this after ``sink.max_attempts`` failed attempts; a sink that can tell
        which events of the batch already made it (the per-event handler) answers with fewer.
        """
        return events

    def recent_ids(self, limit: int) -> list[str]:
        """The message ids of the events this sink stored last, newest first, at most ``limit``.

        Called after :meth:`open`, before each subscription: the runner seeds its window of
        recent ids with them, so a redelivery of an event stored before a crash is recognised
        and only acknowledged. Bounded work (``limit`` ids), not proportional to what is
        stored. A sink that cannot tell (a handler, stdout) returns none: into it, delivery
        is at least once.

        Raises:
            SinkError: The store cannot be read.
        """
        return []

    def close(self) -> None:
        """Flush and release resources; safe to call twice."""

    def __enter__(self) -> "Sink":
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
