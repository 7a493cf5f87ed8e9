"""Transports, found by name and imported only when selected.

Selecting ``stomp`` never imports JPype; selecting ``openwire`` never imports stomp.py.
"""

from __future__ import annotations

import difflib
import importlib
from typing import TYPE_CHECKING

from bridge.errors import ConfigError, TransportUnavailableError
from bridge.transports.base import Hooks, Transport

if TYPE_CHECKING:
    from bridge.config import BridgeConfig

TRANSPORTS = {
    "openwire": "bridge.transports.openwire:OpenWireTransport",
    "stomp": "bridge.transports.stomp:StompTransport",
}

__all__ = ["Hooks", "Transport", "TRANSPORTS", "create_transport", "transport_class"]


def transport_class(name: str) -> type[Transport]:
    """Import and return the transport class registered as ``name``.

    Raises:
        ConfigError: No transport has that name.
        TransportUnavailableError: Its driver library cannot be imported here.
    """
    try:
        target = TRANSPORTS[name]
    except KeyError:
        close = difflib.get_close_matches(name, TRANSPORTS, n=1)
        hint = f". Did you mean {close[0]}?" if close else ""
        raise ConfigError(f"No such transport: {name}{hint}", key="transport") from None
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TransportUnavailableError(f"{name}: cannot import {exc.name or module_name} ({exc})") from exc
    return getattr(module, attr)


def create_transport(name: str, config: "BridgeConfig", hooks: Hooks | None = None) -> Transport:
    """Build an unconnected transport of the given name."""
    return transport_class(name)(config, hooks)
