"""A javax.jms.Message's properties read with JPype calls, as :mod:`bridge.properties` describes
them: the path without the helper jar (its ``Properties.java`` does the same in Java, per batch)."""

from __future__ import annotations

from typing import Any

from bridge import properties
from bridge.transports.openwire.java import classes


def message_properties(message: Any) -> dict[str, Any]:
    """The properties of ``message``, or ``{}`` when it has nothing beyond the defaults."""
    props = {str(name): _json_value(value) for name, value in message.getProperties().items()}  # {} at once if none
    kind, correlation = message.getJMSType(), message.getJMSCorrelationID()
    priority, expiration = int(message.getJMSPriority()), int(message.getJMSExpiration())
    if not props and kind is None and correlation is None and priority == properties.DEFAULT_PRIORITY \
            and expiration == 0:
        return {}
    if kind is not None:
        props[properties.JMS_TYPE] = str(kind)
    if correlation is not None:
        props[properties.JMS_CORRELATION_ID] = str(correlation)
    props[properties.JMS_PRIORITY] = priority
    persistent = int(message.getJMSDeliveryMode()) == int(classes().PERSISTENT)
    props[properties.JMS_DELIVERY_MODE] = properties.PERSISTENT if persistent else properties.NON_PERSISTENT
    props[properties.JMS_EXPIRATION] = expiration
    return props


def _json_value(value: Any) -> Any:
    """A property value from JPype as a JSON value (as Properties.java writes it)."""
    import jpype

    if value is None:
        return None
    name = str(value.getClass().getSimpleName()) if isinstance(value, jpype.JObject) else ""
    if name == "Boolean":
        return bool(value.booleanValue())
    if name in ("Byte", "Short", "Integer", "Long"):
        return int(value.longValue())
    if name in ("Float", "Double"):
        return properties.json_value(float(str(value.toString())))  # Java's text: 0.1f is 0.1
    if name == "byte[]":
        return properties.json_value(bytes(value))
    return properties.json_value(str(value))
