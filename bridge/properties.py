"""Message properties: one model for both transports (``Event.properties``).

An event's ``properties`` hold the message's application properties as JSON values and the
standard JMS headers people select on, under their JMS names:

==================  =====================================  ======================================
name                value                                  over STOMP (ActiveMQ's MESSAGE header)
==================  =====================================  ======================================
``JMSType``         string (only when set)                 ``type``
``JMSCorrelationID`` string (only when set)                ``correlation-id``
``JMSPriority``     integer 0-9                            ``priority``
``JMSDeliveryMode`` ``"PERSISTENT"`` / ``"NON_PERSISTENT"`` ``persistent: true`` present or not
``JMSExpiration``   integer, ms since the epoch (0: never) ``expires``
==================  =====================================  ======================================

A message that carries nothing beyond the defaults (no application property, no JMSType, no
JMSCorrelationID, priority 4, no expiration) has no properties at all, so the common case costs
nothing; any other message gets its application properties and all the standard headers.

Values: booleans, integers and floating-point numbers stay what they are; NaN and infinities,
bytes (base64), and any other object (a nested map or list) become their text. OpenWire sees the
Java types; STOMP carries every value as text (ActiveMQ writes ``"" + value``), so a STOMP header
is typed back the way Java printed it: ``true``/``false`` as booleans, ``-12`` as an integer,
``1.5`` / ``1.0E10`` as floats, anything else as the string. A JMS string property whose text
looks like a number or a boolean therefore arrives as a number or boolean over STOMP, and as a
string over OpenWire; an application property named like one of ActiveMQ's STOMP headers
(:data:`STOMP_HEADERS`) cannot be told from that header over STOMP and is left out there.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping

try:
    from orjson import dumps as _fast_dumps, loads as _fast_loads
except ImportError:  # pragma: no cover - orjson is a dependency
    _fast_dumps = _fast_loads = None

JMS_TYPE, JMS_CORRELATION_ID, JMS_PRIORITY = "JMSType", "JMSCorrelationID", "JMSPriority"
JMS_DELIVERY_MODE, JMS_EXPIRATION = "JMSDeliveryMode", "JMSExpiration"
#: The standard headers an event's properties carry, in this order.
STANDARD_HEADERS = (JMS_TYPE, JMS_CORRELATION_ID, JMS_PRIORITY, JMS_DELIVERY_MODE, JMS_EXPIRATION)
PERSISTENT, NON_PERSISTENT = "PERSISTENT", "NON_PERSISTENT"
DEFAULT_PRIORITY = 4  # javax.jms.Message.DEFAULT_PRIORITY

#: Headers ActiveMQ (5.x, ``FrameTranslator.Helper`` and ``ProtocolConverter``) writes on a STOMP
#: MESSAGE frame itself: every other header is an application property.
STOMP_HEADERS = frozenset((
    "destination", "message-id", "correlation-id", "expires", "redelivered", "priority", "reply-to",
    "timestamp", "type", "user-id", "original-destination", "persistent", "subscription", "ack",
    "content-length",
))

#: Headers whose presence alone says nothing beyond the defaults.
_DEFAULT_ONLY = STOMP_HEADERS - {"type", "correlation-id"}
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")  # as Java's Long.toString writes them
_FLOAT = re.compile(r"-?[0-9]+\.[0-9]+(?:E-?[0-9]+)?\Z")  # as Java's Double.toString writes them


def from_stomp(headers: Mapping[str, str]) -> dict[str, Any]:
    """The properties of a MESSAGE frame from ActiveMQ, given its headers (see the module docstring).

    Returns an empty dict for a message with nothing beyond the defaults; the caller keeps it
    cheap by calling this only when :func:`stomp_has_properties` says so.
    """
    properties: dict[str, Any] = {name: stomp_value(value) for name, value in headers.items()
                                  if name not in STOMP_HEADERS}
    kind, correlation = headers.get("type"), headers.get("correlation-id")
    if kind is not None:
        properties[JMS_TYPE] = kind
    if correlation is not None:
        properties[JMS_CORRELATION_ID] = correlation
    priority, expires = headers.get("priority", ""), headers.get("expires", "")
    properties[JMS_PRIORITY] = int(priority) if _INTEGER.match(priority) else DEFAULT_PRIORITY
    properties[JMS_DELIVERY_MODE] = PERSISTENT if headers.get("persistent") == "true" else NON_PERSISTENT
    properties[JMS_EXPIRATION] = int(expires) if _INTEGER.match(expires) else 0
    return properties


def stomp_has_properties(headers: Mapping[str, str]) -> bool:
    """Whether a MESSAGE frame carries anything beyond the defaults (cheap: runs for every message)."""
    return not headers.keys() <= _DEFAULT_ONLY or headers.get("priority", "4") != "4" \
        or headers.get("expires", "0") != "0"


def stomp_value(text: str) -> Any:
    """A STOMP header value typed back as Java printed it: booleans, integers, floats, else the text."""
    if text == "true":
        return True
    if text == "false":
        return False
    if _INTEGER.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    return text


def json_value(value: Any) -> Any:
    """A property value as a JSON value: bool, int, finite float and str as they are; NaN and
    infinities as their Java text; bytes as base64; anything else as its text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (bytes, bytearray, memoryview)):
        import base64

        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)


def decode(text: str) -> dict[str, Any]:
    """Properties from the JSON object the OpenWire helper (jars/src Properties.java) made."""
    if _fast_loads is not None:
        try:
            return _fast_loads(text)
        except ValueError:  # an integer past 64 bits cannot come from Java; anything else: json decides
            pass
    return json.loads(text)


def encode(properties: Mapping[str, Any]) -> str:
    """Properties as compact JSON text (for a sink's ``properties`` column)."""
    if _fast_dumps is not None:
        try:
            return _fast_dumps(properties).decode()
        except TypeError:  # an integer past 64 bits, or a key that is not a string
            pass
    return json.dumps(properties, separators=(",", ":"), ensure_ascii=False, default=str)
