"""Sinks, found by name in a registry and imported only when selected."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from bridge.errors import ConfigError
from bridge.sinks.base import Sink

if TYPE_CHECKING:
    from bridge.config import SinkConfig

SINKS = {
    "stdout": "bridge.sinks.lines:StdoutSink",
    "jsonl": "bridge.sinks.lines:JsonlSink",
    "handler": "bridge.sinks.handler:HandlerSink",
    "sqlite": "bridge.sinks.sqlite:SqliteSink",
    "postgres": "bridge.sinks.postgres:PostgresSink",
}

__all__ = ["Sink", "SINKS", "create_sink"]


def create_sink(config: "SinkConfig") -> Sink:
    """Build the (unopened) sink selected by ``config.type``."""
    try:
        target = SINKS[config.type]
    except KeyError:
        raise ConfigError(f"No such sink: {config.type}", key="sink.type") from None
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)(config)
