"""The OpenWire transport's fast path: ``org.amqbridge.BatchReceiver`` (jars/src), in the helper
jar that ``scripts/setup`` builds.

It receives a whole batch and acknowledges a whole batch in one Python->Java call each, where
plain JPype takes about nine calls per message; the ``javax.jms.Message`` objects stay on the Java
side, keyed by delivery tag. Without the jar (a JVM started by the host without it, or setup not
run) :func:`load` returns ``None`` and the transport makes the calls itself.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Sequence

from bridge.event import Event, make_event

log = logging.getLogger(__name__)

CLASS = "org.amqbridge.BatchReceiver"
# Kinds of message, as in BatchReceiver.java.
TEXT, BYTES, OBJECT, OTHER, BAD_TEXT = range(5)


@functools.cache
def _receiver_class() -> Any:
    import jpype

    try:
        return jpype.JClass(CLASS)
    except Exception as exc:  # not on the classpath
        log.debug("OpenWire helper %s not loadable (%s); receiving with one JPype call per message field "
                  "(scripts/setup builds jars/amq-bridge-helper.jar)", CLASS, exc)
        return None


def load(consumer: Any) -> "BatchReceiver | None":
    """A batch receiver for ``consumer`` (a javax.jms.MessageConsumer), or None without the helper jar."""
    cls = _receiver_class()
    return None if cls is None else BatchReceiver(cls(consumer))


def _ints(array: Any, code: str) -> list[int]:
    """A Java int[] or long[] as a list, in one copy (JPype's views say "=i"/"=q": native order)."""
    return memoryview(array).cast("B").cast(code).tolist()


class BatchReceiver:
    """One consumer's Java-side receiver; call it from the thread that drives the transport."""

    def __init__(self, receiver: Any) -> None:
        self._receiver = receiver
        self._long_array = _java_long_array()

    def receive(self, max_events: int, timeout_ms: int, *, destination: str, transport: str,
                max_bytes: int) -> list[Event]:
        """Up to ``max_events`` events, waiting ``timeout_ms`` for the first; tags as the helper gave them.

        Raises:
            jpype.JException: from the consumer (the caller turns it into a TransportError).
        """
        batch = self._receiver.receive(max_events, timeout_ms)
        count = int(batch.count)
        if not count:
            return []
        first_tag = int(batch.firstTag)
        ids, id_ends = str(batch.ids), _ints(batch.idEnds, "i")
        stamps = _ints(batch.timestamps, "q")
        redelivered = memoryview(batch.redelivered).tolist()
        kinds = _ints(batch.kinds, "i")
        bodies, body_ends = bytes(batch.bodies), _ints(batch.bodyEnds, "i")
        java_properties = batch.properties
        properties: list[Any] = [None] * count
        if java_properties is not None:  # rare: one message with properties makes the whole batch pay
            for i in range(count):
                pairs = java_properties[i]
                if pairs is not None:
                    values = [str(value) for value in pairs]
                    properties[i] = dict(zip(values[0::2], values[1::2]))
        names = batch.kindNames
        events: list[Event] = []
        id_start = body_start = 0
        for i in range(count):
            fields: dict[str, Any] = dict(
                message_id=ids[id_start:id_ends[i]], destination=destination, timestamp=stamps[i] or None,
                redelivered=bool(redelivered[i]), transport=transport, delivery_tag=first_tag + i)
            if properties[i] is not None:
                fields["headers"] = properties[i]
            body = bodies[body_start:body_ends[i]]
            id_start, body_start = id_ends[i], body_ends[i]
            kind = kinds[i]
            if kind in (TEXT, BYTES):
                events.append(make_event(body, max_bytes, **fields))
            elif kind == BAD_TEXT:  # body as Java encodes it: '?' for the surrogate
                events.append(Event(body=body, data=None, problem="text body holds an unpaired UTF-16 surrogate",
                                    **fields))
            elif kind == OBJECT:  # deserializing would run the sender's classes: never
                events.append(Event(body=b"", data=None, problem="ObjectMessage refused (never deserialized)",
                                    **fields))
            else:
                events.append(Event(body=b"", data=None, problem=f"unsupported JMS {names[i]}: only text and "
                                    "bytes messages carry events", **fields))
        return events

    def ack_all(self, tags: Sequence[int]) -> None:
        """Acknowledge these messages individually, in order, in one call.

        Raises:
            jpype.JException: An acknowledgement failed; the rest of ``tags`` are forgotten.
        """
        if tags:
            self._receiver.ackAll(self._long_array(tags))

    def forget(self, tags: Sequence[int]) -> None:
        """Drop these messages without acknowledging them (the broker redelivers them)."""
        if tags:
            self._receiver.forget(self._long_array(tags))


def _java_long_array() -> Any:
    from jpype import JArray, JLong

    return JArray(JLong)
