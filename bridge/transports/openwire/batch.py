"""The OpenWire transport's fast path: ``org.amqbridge.BatchReceiver`` (jars/src), in the helper
jar that ``scripts/setup`` builds.

It receives a whole batch and acknowledges a whole batch in one Python->Java call each, where
plain JPype takes about nine calls per message; the ``javax.jms.Message`` objects stay on the Java
side, keyed by delivery tag. With ranged acknowledgements a Java thread of the helper receives
and builds the next batches (at most two) from the first ``receive()`` on, while the caller writes
the one before; ``receive()`` then takes a ready batch. Without the jar (a JVM started by the host
without it, or setup not run) :func:`load` returns ``None`` and the transport makes the calls itself.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Sequence

from bridge.errors import MessageError
from bridge.event import Event, decode_body
from bridge.properties import decode as decode_properties

log = logging.getLogger(__name__)

CLASS = "org.amqbridge.BatchReceiver"
VERSION = 3  # BatchReceiver.VERSION: the layout of its Batch this module reads
_NO_HEADERS: dict[str, str] = {}  # shared by the events without properties: never changed
# Kinds of message, as in BatchReceiver.java.
TEXT, BYTES, OBJECT, OTHER, BAD_TEXT = range(5)


@functools.cache
def _receiver_class() -> Any:
    import jpype

    try:
        cls = jpype.JClass(CLASS)
    except Exception as exc:  # not on the classpath
        log.debug("OpenWire helper %s not loadable (%s); receiving with one JPype call per message field "
                  "(scripts/setup builds jars/amq-bridge-helper.jar)", CLASS, exc)
        return None
    version = int(getattr(cls, "VERSION", 1))
    if version != VERSION:
        log.warning("OpenWire helper jars/amq-bridge-helper.jar is version %d, this bridge reads version %d: "
                    "receiving without it (slower); run scripts/setup to rebuild it", version, VERSION)
        return None
    return cls


def available() -> bool:
    """Whether the helper jar is on the JVM's classpath (the JVM must be running)."""
    return _receiver_class() is not None


def load(consumer: Any, *, session: Any, interrupts: Any, linger_ms: int,
         ahead: int = 0) -> "BatchReceiver | None":
    """A batch receiver for ``consumer`` (a javax.jms.MessageConsumer), or None without the helper jar.

    Args:
        session: The consumer's session when it is CLIENT_ACKNOWLEDGE (acknowledgements ranged,
            or cumulative where ActiveMQ's client does not allow ranged ones); None when it is
            INDIVIDUAL_ACKNOWLEDGE.
        interrupts: Failover's interruption count (a Java AtomicInteger): each batch's epoch.
        linger_ms: After a batch's first message, wait up to this long for more.
        ahead: With ranged acknowledgements, receive batches of up to this many on a Java
            thread, from the first :meth:`BatchReceiver.receive` on, while the caller writes the
            one before (0: no). Nothing is received before that call.
    """
    cls = _receiver_class()
    if cls is None:
        return None
    receiver = BatchReceiver(cls(consumer, session, interrupts, linger_ms))
    receiver.ahead_max = ahead if receiver.ranged else 0
    return receiver


def _ints(array: Any, code: str) -> list[int]:
    """A Java int[] or long[] as a list, in one copy (JPype's views say "=i"/"=q": native order)."""
    return memoryview(array).cast("B").cast(code).tolist()


class BatchReceiver:
    """One consumer's Java-side receiver; call it from the thread that drives the transport."""

    def __init__(self, receiver: Any) -> None:
        self._receiver = receiver
        self._long_array = _java_long_array()
        #: Acknowledgements name exactly the messages acked (see RangedAcks.java).
        self.ranged = bool(receiver.isRanged())
        #: Ranged: work ahead from the first receive() on, in batches of up to this many (0: never).
        self.ahead_max = 0
        self.ahead = False
        self._leftover: list[Event] = []  # working ahead: events of a batch beyond what was asked
        self._leftover_epoch = 0

    def stop(self) -> None:
        """Stop the thread working ahead (if any); what it holds is never acknowledged."""
        if self.ahead:
            self._receiver.stopAhead(200)
        self.ahead, self.ahead_max = False, 0
        self._leftover = []

    def receive(self, max_events: int, timeout_ms: int, *, destination: str, transport: str,
                max_bytes: int) -> tuple[list[Event], int]:
        """Up to ``max_events`` events, waiting ``timeout_ms`` for the first, and the epoch they
        were received in; tags as the helper gave them.

        Raises:
            jpype.JException: from the consumer (the caller turns it into a TransportError).
        """
        if self._leftover:
            events, self._leftover = self._leftover[:max_events], self._leftover[max_events:]
            return events, self._leftover_epoch
        receiver = self._receiver
        if self.ahead_max and not self.ahead:
            receiver.startAhead(self.ahead_max)
            self.ahead = True
        batch = receiver.take(timeout_ms) if self.ahead else receiver.receive(max_events, timeout_ms)
        events = self._events(batch, destination, transport, max_bytes)
        epoch = int(batch.epoch)
        if len(events) > max_events:
            self._leftover, self._leftover_epoch = events[max_events:], epoch
            del events[max_events:]
        return events, epoch

    @staticmethod
    def _events(batch: Any, destination: str, transport: str, max_bytes: int) -> list[Event]:
        """The events of one Java batch."""
        count = int(batch.count)
        if not count:
            return []
        first_tag = int(batch.firstTag)
        ids, id_ends = str(batch.ids), _ints(batch.idEnds, "i")
        stamps = _ints(batch.timestamps, "q")
        redelivered = memoryview(batch.redelivered).tolist()  # format '?': bools
        kinds = _ints(batch.kinds, "i")
        bodies, body_ends = bytes(batch.bodies), _ints(batch.bodyEnds, "i")
        java_properties = batch.properties
        properties: list[Any] = [None] * count
        if java_properties is not None:  # rare: one message with properties makes the whole batch pay
            for i in range(count):
                text = java_properties[i]
                if text is not None:
                    properties[i] = decode_properties(str(text))
        names = batch.kindNames
        events: list[Event] = []
        append, decode = events.append, decode_body
        id_start = body_start = 0
        for i in range(count):
            id_end, body_end = id_ends[i], body_ends[i]
            body = bodies[body_start:body_end]
            message_id = ids[id_start:id_end]
            id_start, body_start = id_end, body_end
            kind, data, problem = kinds[i], None, None
            if kind == TEXT or kind == BYTES:
                try:
                    data = decode(body, max_bytes)
                except MessageError as exc:
                    problem = str(exc)
            elif kind == BAD_TEXT:  # body as Java encodes it: '?' for the surrogate
                problem = "text body holds an unpaired UTF-16 surrogate"
            elif kind == OBJECT:  # deserializing would run the sender's classes: never
                body, problem = b"", "ObjectMessage refused (never deserialized)"
            else:
                body, problem = b"", f"unsupported JMS {names[i]}: only text and bytes messages carry events"
            # Positional, in Event's field order: this runs once per message.
            props = properties[i] or _NO_HEADERS
            append(Event(body, data, message_id, destination, stamps[i] or None, redelivered[i], transport,
                         props, props, problem, first_tag + i))
        return events

    def ack_all(self, tags: Sequence[int]) -> None:
        """Acknowledge these messages in one call: each individually; ranged, every run of
        consecutive deliveries acked so far with one acknowledgement each; or (cumulative) all of
        them with one acknowledgement once no message received is left unacked by the caller
        (until then they wait: without ranged acknowledgements nothing is received ahead, and
        the runner acks whole batches, so they go at once).

        Raises:
            jpype.JException: An acknowledgement failed; the rest of ``tags`` are forgotten.
        """
        if not tags:
            return
        first, count = tags[0], len(tags)
        if tags[-1] - first == count - 1 and list(tags) == list(range(first, first + count)):
            self._receiver.ackRange(first, count)  # one batch, as the runner acks: no array to convert
        else:
            self._receiver.ackAll(self._long_array(tags))

    def forget(self, tags: Sequence[int]) -> None:
        """Drop these messages without acknowledging them (the broker redelivers them)."""
        if tags:
            self._receiver.forget(self._long_array(tags))


def _java_long_array() -> Any:
    from jpype import JArray, JLong

    return JArray(JLong)
