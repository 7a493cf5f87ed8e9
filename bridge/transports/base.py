"""The transport interface: how events come off a broker.

A transport owns one connection. The runner drives it::

    transport.connect(timeout)            # raises a TransportError subclass on failure
    transport.subscribe(destination, selector=..., durable_name=...)   # queue, topic, durable topic
    events = transport.receive(max_events, timeout)   # [] when nothing arrived in time
    transport.ack(event)                  # only after the sink made the event durable
    transport.close()

``send`` publishes a body and ``flush_sends`` waits until the broker has them all (used by
``amq-bridge publish`` and by tests). Transports never hand
out a driver object: everything leaves as :class:`bridge.event.Event` or a ``BridgeError``.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from bridge.config import BridgeConfig, Destination
    from bridge.event import Event


class Hooks:
    """Lifecycle callbacks; subclass and override what you need (all are no-ops).

    Hooks are called from the thread that drives the transport or from the driver's own
    thread, so keep them short and thread-safe.
    """

    def on_connecting(self, transport: str, endpoint: str) -> None:
        """A connection attempt to ``endpoint`` starts."""

    def on_connected(self, transport: str, endpoint: str) -> None:
        """The connection to ``endpoint`` is established."""

    def on_disconnected(self, transport: str, reason: str) -> None:
        """The connection was lost or closed; ``reason`` says why."""

    def on_fallback(self, failed: str, reason: str, next_transport: str) -> None:
        """Transport ``failed`` could not be used; ``next_transport`` is tried next."""


class Transport(abc.ABC):
    """One broker connection speaking one protocol."""

    #: The name used in ``config.yaml`` (``openwire``, ``stomp``).
    name: str = ""

    def __init__(self, config: "BridgeConfig", hooks: Hooks | None = None) -> None:
        self.config = config
        self.hooks = hooks or Hooks()

    @abc.abstractmethod
    def connect(self, timeout: float) -> None:
        """Connect and authenticate with the configured connection id, within ``timeout`` seconds."""

    @abc.abstractmethod
    def subscribe(self, destination: "Destination", *, selector: str | None = None,
                  durable_name: str | None = None) -> None:
        """Start consuming ``destination`` with individual (per-message) acknowledgement.

        Args:
            selector: A JMS message selector; only matching messages are delivered.
            durable_name: For a topic: consume through the durable subscription of this name
                (created if missing) of the connection id, which keeps what is published while
                nobody consumes it.

        Raises:
            SubscriptionError: The broker refused the subscription (an invalid selector).
        """

    @abc.abstractmethod
    def receive(self, max_events: int, timeout: float) -> Sequence["Event"]:
        """Wait up to ``timeout`` seconds for a first event, then take up to ``max_events``: those
        ready, and those arriving within ``batch_linger_ms`` of the first."""

    @property
    def independent_acks(self) -> bool:
        """Whether an acknowledgement covers exactly the events it names (after ``subscribe``), so
        events may be received while earlier ones wait for theirs: the runner then receives the
        next batch while the sink stores this one. False where an acknowledgement would cover
        everything received so far."""
        return True

    @abc.abstractmethod
    def ack(self, event: "Event") -> None:
        """Acknowledge one event received from this transport."""

    def ack_many(self, events: Sequence["Event"]) -> None:
        """Acknowledge these events, in order; the default calls :meth:`ack` on each.

        Transports that can acknowledge a batch more cheaply override it, keeping each
        acknowledgement individual.
        """
        for event in events:
            self.ack(event)

    def unsubscribe(self, name: str) -> None:
        """Remove the durable subscription ``name`` of this connection's connection id.

        Call it on a connected transport that consumes nothing.

        Raises:
            SubscriptionError: No such subscription exists, or it is in use.
        """
        raise NotImplementedError(f"{self.name} cannot remove durable subscriptions")

    @abc.abstractmethod
    def send(self, destination: "Destination", body: bytes, *, persistent: bool = False) -> None:
        """Publish one message body to ``destination``."""

    def flush_sends(self, timeout: float) -> None:
        """Wait until the broker has accepted everything sent so far.

        The default does nothing, for protocols whose ``close`` is already a round trip behind
        every send on the connection (OpenWire's is).

        Raises:
            TransportError: The broker did not confirm within ``timeout`` seconds.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connection; safe to call twice, never raises."""

    @property
    @abc.abstractmethod
    def connected(self) -> bool:
        """Whether the connection is up right now."""

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
