"""The one event type every transport produces and every sink consumes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from bridge.errors import BridgeError, MessageError

_EMPTY: Mapping[str, str] = {}


@dataclass(frozen=True, slots=True)
class Event:
    """One message taken off the broker.

    Attributes:
        body: The raw message body, exactly as the broker delivered it.
        data: The body decoded as a JSON object, or ``None`` when ``problem`` is set.
        message_id: The broker's message id (JMSMessageID / STOMP ``message-id``).
        destination: Where the message was consumed from, as ``queue:NAME`` or ``topic:NAME``.
        timestamp: The broker timestamp in milliseconds since the epoch, or ``None``.
        redelivered: Whether the broker says it delivered this message before.
        transport: The name of the transport that received it (``openwire``, ``stomp``).
        headers: Message headers and properties, as strings.
        problem: Why the body could not be decoded; such an event goes to the dead-letter sink.
        delivery_tag: The transport's handle for acknowledging this delivery; opaque elsewhere.
        acker: Set on events handed out by :func:`bridge.open`, where :meth:`ack` calls it.
    """

    body: bytes
    data: dict[str, Any] | None
    message_id: str
    destination: str
    timestamp: int | None = None
    redelivered: bool = False
    transport: str = ""
    headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    problem: str | None = None
    delivery_tag: int = field(default=0, compare=False, repr=False)
    acker: Callable[["Event"], None] | None = field(default=None, compare=False, repr=False)

    def ack(self) -> None:
        """Confirm this event was handled (events from :func:`bridge.open` only).

        Raises:
            BridgeError: The event did not come from a stream.
        """
        if self.acker is None:
            raise BridgeError("this event is acknowledged by the runner, not by ack()")
        self.acker(self)

    def to_json(self) -> dict[str, Any]:
        """The event as the JSON object sinks write (one line of JSON lines)."""
        return {
            "message_id": self.message_id,
            "destination": self.destination,
            "timestamp": self.timestamp,
            "redelivered": self.redelivered,
            "transport": self.transport,
            "data": self.data,
        }


def decode_body(body: bytes, max_bytes: int) -> dict[str, Any]:
    """Decode a message body into a JSON object.

    Args:
        body: The raw body.
        max_bytes: Bodies longer than this are refused before any decoding.

    Returns:
        The decoded JSON object.

    Raises:
        MessageError: The body is empty, too large, not UTF-8, not JSON, or not a JSON object.
    """
    if not body:
        raise MessageError("empty body")
    if len(body) > max_bytes:
        raise MessageError(f"body of {len(body)} bytes is over the limit of {max_bytes} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MessageError(f"body is not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MessageError(f"body is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise MessageError(f"body is JSON {type(data).__name__}, not an object")
    return data


def make_event(body: bytes, max_bytes: int, **fields: Any) -> Event:
    """Build an :class:`Event`, decoding ``body``; a body that cannot be decoded sets ``problem``."""
    try:
        return Event(body=body, data=decode_body(body, max_bytes), **fields)
    except MessageError as exc:
        return Event(body=body, data=None, problem=str(exc), **fields)
