"""The one event type every transport produces and every sink consumes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from bridge.errors import BridgeError, MessageError

try:  # about 8x faster than json on an event; without it, json decodes everything
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - orjson is a dependency; a platform without a wheel still works
    _fast_loads = None

_EMPTY: Mapping[str, Any] = {}  # shared by every event without headers or properties: never changed
#: A run of 19 digits: an integer orjson would turn into a float (past 64 bits) may be in it.
_LONG_NUMBER = re.compile(rb"\d{19}").search


@dataclass(slots=True)
class Event:
    """One message taken off the broker.

    An event is a value: sinks and handlers read it and must not change it (the runner
    acknowledges and de-duplicates by its fields); ``dataclasses.replace`` makes a changed copy.
    It is not frozen only because a frozen dataclass takes three times as long to build, and
    one is built for every message.

    Attributes:
        body: The raw message body, exactly as the broker delivered it.
        data: The body decoded as a JSON object, or ``None`` when ``problem`` is set.
        message_id: The broker's message id (JMSMessageID / STOMP ``message-id``).
        destination: Where the message was consumed from, as ``queue:NAME`` or ``topic:NAME``.
        timestamp: The broker timestamp in milliseconds since the epoch, or ``None``.
        redelivered: Whether the broker says it delivered this message before.
        transport: The name of the transport that received it (``openwire``, ``stomp``).
        headers: What the transport received besides the body, as the dead-letter file records it:
            the STOMP frame's headers (strings); over OpenWire, ``properties``.
        properties: The message's application properties as JSON values (string, number,
            boolean; anything else as its text), plus the standard headers ``JMSType``,
            ``JMSCorrelationID``, ``JMSPriority``, ``JMSDeliveryMode`` (``PERSISTENT`` /
            ``NON_PERSISTENT``) and ``JMSExpiration``; empty for a message that carries nothing
            beyond the defaults (see :mod:`bridge.properties`). The same for a message whichever
            transport received it.
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
    headers: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    properties: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
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

    def to_json(self, properties: bool = True) -> dict[str, Any]:
        """The event as the JSON object sinks write (one line of JSON lines).

        Args:
            properties: Include ``"properties"`` (when the message has any).
        """
        line: dict[str, Any] = {
            "message_id": self.message_id,
            "destination": self.destination,
            "timestamp": self.timestamp,
            "redelivered": self.redelivered,
            "transport": self.transport,
        }
        if properties and self.properties:
            line["properties"] = dict(self.properties)
        line["data"] = self.data
        return line


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
    if _fast_loads is not None and not _LONG_NUMBER(body):
        # orjson is strict JSON and validates UTF-8 itself; whatever it refuses (NaN, a lone
        # surrogate escape, bad input) goes on to json below, so both accept the same bodies
        # and an error is worded by json. Long digit runs go to json too: orjson would make a
        # float of an integer past 64 bits.
        try:
            data = _fast_loads(body)
        except ValueError:
            pass
        else:
            if type(data) is dict:
                return data
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
