"""The exceptions amq-bridge raises; every one derives from :class:`BridgeError`.

::

    BridgeError
    ├── ConfigError                  a configuration value is invalid (names file and key)
    ├── TransportError               anything between the bridge and the broker
    │   ├── TransportUnavailableError   the transport cannot start here (no JVM, jars, library)
    │   ├── ConnectError                the broker cannot be reached in time
    │   ├── AuthenticationError         the broker refused the credentials
    │   ├── ClientIdInUseError          the connection id is already connected
    │   ├── SubscriptionError           the broker refused the subscription (a selector...)
    │   └── ConnectionLostError         an established connection broke
    ├── MessageError                 a message body cannot be turned into an event
    └── SinkError                    the sink cannot accept events

Driver errors (Java exceptions, stomp.py exceptions, socket errors) are translated into these at
the transport boundary with ``raise X(...) from exc``; nothing else escapes a transport module.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Root of every error amq-bridge raises on purpose."""


class ConfigError(BridgeError):
    """A configuration value is invalid; the message names the file and the key."""

    def __init__(self, message: str, *, source: str = "", key: str = "") -> None:
        self.source = source
        self.key = key
        self.reason = message
        where = ": ".join(part for part in (source, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


class TransportError(BridgeError):
    """Something went wrong between the bridge and the broker."""


class TransportUnavailableError(TransportError):
    """The transport cannot start in this process (no JVM, missing jars, missing library)."""


class ConnectError(TransportError):
    """The broker could not be reached within the configured time."""


class AuthenticationError(TransportError):
    """The broker refused the username or password."""


class ClientIdInUseError(TransportError):
    """Another connection with the same connection id (JMS client id) is connected."""

    def __init__(self, connection_id: str) -> None:
        self.connection_id = connection_id
        super().__init__(
            f"connection id {connection_id!r} is already connected to the broker "
            "(another process uses it, or the broker still holds a crashed one)"
        )


class SubscriptionError(TransportError):
    """The broker refused the subscription itself (an invalid selector, a durable subscription
    that does not exist or is in use): no reconnection changes that, so the run stops."""


class ConnectionLostError(TransportError):
    """An established connection to the broker broke."""


class MessageError(BridgeError):
    """A message body cannot be turned into an event (malformed, oversized, wrong type)."""


class SinkError(BridgeError):
    """The sink cannot accept events; nothing written since the last flush is acknowledged."""
