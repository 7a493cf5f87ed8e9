"""``amq-bridge unsubscribe``: remove the durable topic subscription a configuration consumes.

The broker keeps every message published to the topic for a durable subscription until it is
consumed, also when no bridge runs any more; removing the subscription drops what it holds and
stops that. It connects with the configured connection id (the subscription is the pair
connection id + subscription name), so no bridge may be running with it.
"""

from __future__ import annotations

import logging

from bridge.config import BridgeConfig
from bridge.connection import open_transport
from bridge.errors import ClientIdInUseError, ConfigError, SubscriptionError

log = logging.getLogger(__name__)


def unsubscribe(config: BridgeConfig) -> str:
    """Remove the configured durable subscription; returns the line to print.

    Raises:
        ConfigError: The configuration has no durable subscription.
        SubscriptionError: It does not exist, or is in use (a bridge is connected with the id).
        TransportError: The broker cannot be reached, or refused the credentials.
    """
    sub = config.subscription
    name = sub.durable_name
    if name is None:
        what = "a queue" if sub.destination.kind == "queue" else "a topic with durable: false"
        raise ConfigError(f"{sub.destination} is {what}: there is no durable subscription to remove",
                          source=config.source, key="subscription.destination")
    which = f"durable subscription {name!r} of connection id {sub.connection_id!r} to {sub.destination}"
    try:
        transport = open_transport(config)
    except ClientIdInUseError as exc:
        raise SubscriptionError(f"{which} is in use: connection id {sub.connection_id!r} is connected (stop the "
                                "bridge using it first; after a crash the broker may hold it a little longer)") from exc
    try:
        transport.unsubscribe(name)
    finally:
        transport.close()
    return f"removed the {which}; the broker keeps nothing more for it"
