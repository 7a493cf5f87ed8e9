"""The ``handler`` sink: your own Python function receives each event, or each batch.

``sink.handler: package.module:function`` names a callable. With ``sink.mode: batch`` it takes a
list of :class:`bridge.event.Event`; with ``sink.mode: event`` it takes one event at a time.
When it returns, the event (or batch) counts as delivered; when it raises, nothing undelivered is
acknowledged and the runner calls it again after a backoff (per event: only for the events not yet
delivered), up to ``sink.max_attempts`` times (default 5; 0: forever). Then the undelivered events
are written to the dead-letter file with the exception as the reason, and acknowledged. The
function must therefore tolerate seeing an event twice (at-least-once).
"""

from __future__ import annotations

import importlib
from typing import Callable, Sequence

from bridge.config import HandlerSinkConfig
from bridge.errors import ConfigError, SinkError
from bridge.event import Event
from bridge.sinks.base import Sink


def load_handler(spec: str) -> Callable[[list[Event]], object]:
    """Import ``package.module:function``.

    Raises:
        ConfigError: The module or the attribute cannot be found, or is not callable.
    """
    module_name, _, attr = spec.partition(":")
    try:
        target: object = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load {spec}: {exc}", key="sink.handler") from exc
    if not callable(target):
        raise ConfigError(f"{spec} is not callable", key="sink.handler")
    return target  # type: ignore[return-value]


class HandlerSink(Sink):
    """Calls a function on flush: ``function``, or the one ``sink.handler`` names."""

    name = "handler"

    def __init__(self, config: HandlerSinkConfig, function: Callable[..., object] | None = None) -> None:
        super().__init__(config)
        self.function = function
        self.pending: list[Event] = []
        #: Per-event mode: ids of the events of the batch in hand that the function already took.
        self.done: set[str] = set()

    def open(self) -> None:
        if self.function is None:
            self.function = load_handler(self.config.handler)
        self.pending = []

    def write(self, events: Sequence[Event]) -> None:
        self.pending.extend(events)

    def flush(self) -> None:
        batch, self.pending = self.pending, []  # a failed batch is written again by the retry
        if not batch:
            return
        if self.config.mode == "batch":
            self._call(batch, batch)
            return
        failures: list[SinkError] = []
        for event in batch:  # one failing event does not hold back the others of its batch
            if event.message_id in self.done:
                continue
            try:
                self._call(event, [event])
                self.done.add(event.message_id)
            except SinkError as exc:
                failures.append(exc)
        if failures:
            more = f" (and {len(failures) - 1} more events failed)" if len(failures) > 1 else ""
            raise SinkError(f"{failures[0]}{more}") from failures[0].__cause__
        self.done.clear()

    def undelivered(self, events: Sequence[Event]) -> Sequence[Event]:
        left = [e for e in events if e.message_id not in self.done]
        self.done.clear()
        return left

    def _call(self, argument: object, events: Sequence[Event]) -> None:
        try:
            self.function(argument)  # type: ignore[misc]
        except Exception as exc:
            what = f"event {events[0].message_id}" if self.config.mode == "event" else f"batch of {len(events)}"
            raise SinkError(f"handler {self.config.handler or 'function'} raised {type(exc).__name__}: {exc} "
                            f"({what})") from exc

    def close(self) -> None:
        self.pending = []
        self.done.clear()
