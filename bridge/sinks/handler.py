"""The ``handler`` sink: your own Python function receives each batch of events.

``sink.handler: package.module:function`` names a callable taking a list of
:class:`bridge.event.Event`. When it returns, the batch counts as delivered and is acknowledged;
when it raises, nothing of the batch is acknowledged and the runner calls it again with the same
batch after a backoff, so the function must tolerate seeing a batch twice.
"""

from __future__ import annotations

import importlib
from typing import Callable, Sequence

from bridge.config import SinkConfig
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
    """Calls a function with each batch on flush: ``function``, or the one ``sink.handler`` names."""

    name = "handler"

    def __init__(self, config: SinkConfig, function: Callable[[list[Event]], object] | None = None) -> None:
        super().__init__(config)
        self.function = function
        self.pending: list[Event] = []

    def open(self) -> None:
        if self.function is None:
            assert self.config.handler is not None  # the config loader requires it for this sink
            self.function = load_handler(self.config.handler)
        self.pending = []

    def write(self, events: Sequence[Event]) -> None:
        self.pending.extend(events)

    def flush(self) -> None:
        batch, self.pending = self.pending, []  # a failed batch is written again by the retry
        if not batch:
            return
        try:
            self.function(batch)  # type: ignore[misc]
        except Exception as exc:
            raise SinkError(f"handler {self.config.handler or 'function'} raised {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self.pending = []
