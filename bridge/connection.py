"""Opening a transport: the selected one first, then each fallback in order."""

from __future__ import annotations

import logging

from bridge.config import BridgeConfig
from bridge.errors import ConnectError, TransportError, TransportUnavailableError
from bridge.transports import Hooks, Transport, create_transport

log = logging.getLogger(__name__)

#: Failures after which the next transport in ``fallback`` is tried. Refused credentials and a
#: connection id in use are not among them: another protocol would meet the same refusal.
FALLBACK_ON = (TransportUnavailableError, ConnectError)

_reported: set[tuple[str, str]] = set()


def open_transport(config: BridgeConfig, hooks: Hooks | None = None) -> Transport:
    """Connect with the configured transport, falling back in order.

    Each reason for falling back is logged once per process, at WARNING.

    Raises:
        TransportError: The last transport tried failed, or one failed in a way no fallback fixes.
    """
    hooks = hooks or Hooks()
    order = config.transport_order
    for position, name in enumerate(order):
        transport = None
        try:
            transport = create_transport(name, config, hooks)
            transport.connect(config.connect_timeout)
            return transport
        except FALLBACK_ON as exc:
            if transport is not None:
                transport.close()
            if position + 1 == len(order):
                raise
            next_name = order[position + 1]
            if (name, str(exc)) not in _reported:  # a reconnect loop meets the same reason again
                _reported.add((name, str(exc)))
                log.warning("%s cannot be used: %s; falling back to %s", name, exc, next_name)
            hooks.on_fallback(name, str(exc), next_name)
        except TransportError:
            if transport is not None:
                transport.close()
            raise
    raise TransportError("no transport configured")  # unreachable: order is never empty
