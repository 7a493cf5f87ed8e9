"""The OpenWire consumer: messages received as events, and acknowledged once the caller acks them.

With the helper (:mod:`bridge.transports.openwire.batch`) a batch is one Java call each way and
the ``javax.jms.Message`` objects stay on the Java side; without it, the messages are kept here
and read with JPype calls per message (:meth:`Receiver.event`). Each delivery remembers the
connection's *epoch* (see :mod:`bridge.transports.openwire.state`) it arrived in.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Sequence

from bridge.errors import ConnectionLostError, TransportError
from bridge.event import Event, make_event
from bridge.transports.openwire import batch
from bridge.transports.openwire.errors import runtime_error, subscribe_error
from bridge.transports.openwire.properties import message_properties
from bridge.transports.openwire.java import classes, jms_destination

if TYPE_CHECKING:
    from bridge.config import Destination
    from bridge.transports.openwire.state import ConnectionState

log = logging.getLogger(__name__)


class Receiver:
    """One connection's consumer (one destination) and its deliveries not acknowledged yet."""

    def __init__(self, name: str, state: "ConnectionState") -> None:
        self.name, self._state, self._max_bytes = name, state, state.config.max_message_bytes
        self.consumer: Any = None
        self.destination = ""
        self._batch: batch.BatchReceiver | None = None  # the helper; it keeps the messages
        # delivery tag -> (javax.jms.Message, or None when the helper keeps it; epoch)
        self._unacked: dict[int, tuple[Any, int]] = {}
        self._next_tag = 0
        self._kinds: dict[type, str] = {}  # JPype class of a message -> text, bytes, ...

    def subscribe(self, session: Any, destination: "Destination", *, cumulative: bool, selector: str | None = None,
                  durable_name: str | None = None) -> None:
        """Create the consumer of ``destination`` on ``session`` (and the helper, if it is there):
        a durable subscriber for a topic with ``durable_name``, with ``selector`` when given."""
        try:
            target = jms_destination(session, destination)
            if durable_name is not None and destination.kind == "topic":
                self.consumer = session.createDurableSubscriber(target, durable_name, selector, False)
            elif selector is not None:
                self.consumer = session.createConsumer(target, selector)
            else:  # (destination, None) would be ambiguous to JPype: (String) or (MessageListener)
                self.consumer = session.createConsumer(target)
            config = self._state.config
            self._batch = batch.load(self.consumer, session=session if cumulative else None,
                                     interrupts=self._state.interrupts, linger_ms=config.batch_linger_ms,
                                     ahead=config.batch_size)
        except classes().JException as exc:
            state = self._state
            raise subscribe_error(f"cannot consume {destination}", exc, selector, state.lost, state.config) from exc
        self.destination = str(destination)

    @property
    def ranged(self) -> bool:
        """Whether the helper acknowledges ranges of deliveries (see :mod:`batch`)."""
        return self._batch is not None and self._batch.ranged

    def reset(self) -> None:
        """Forget the consumer and every delivery (the connection is closed: the broker redelivers them)."""
        if self._batch is not None:
            self._batch.stop()
        self.consumer = self._batch = None
        self._unacked.clear()

    def receive(self, max_events: int, timeout: float) -> Sequence[Event]:
        """As OpenWireTransport.receive()."""
        state = self._state
        state.check()
        if self.consumer is None:
            raise TransportError("receive() before subscribe()")
        deadline = time.monotonic() + timeout
        while not state.sync():  # while interrupted, what is prefetched is stale: wait it out
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            time.sleep(min(0.05, left))
            state.check()
        consumer, messages, wait_ms = self.consumer, [], max(1, int((deadline - time.monotonic()) * 1000))
        if self._batch is not None:
            try:
                events, epoch = self._batch.receive(max_events, wait_ms, destination=self.destination,
                                                    transport=self.name, max_bytes=self._max_bytes)
            except classes().JException as exc:
                raise self._error(f"receive from {self.destination} failed", exc) from exc
            for event in events:  # epoch: read after the messages, as below
                self._unacked[event.delivery_tag] = (None, epoch)
            return events
        linger = self._state.config.batch_linger_ms / 1000
        try:
            message = consumer.receive(wait_ms)
            linger_until = time.monotonic() + linger  # the linger counts from the first message
            while message is not None:
                messages.append(message)
                if len(messages) >= max_events:
                    break
                message = consumer.receiveNoWait()
                if message is None and linger:
                    left_ms = int((linger_until - time.monotonic()) * 1000)
                    if left_ms >= 1:
                        message = consumer.receive(left_ms)
        except classes().JException as exc:
            raise self._error(f"receive from {self.destination} failed", exc) from exc
        # Read after the messages: a batch that spans an interruption counts as after it, so its
        # acks are sent (at worst for a stale message, which the broker ignores) rather than
        # skipped (which would leave a fresh delivery unacknowledged on the new connection).
        epoch = int(state.interrupts.get())
        return [self.event(message, epoch) for message in messages]

    def ack_many(self, events: Sequence[Event]) -> None:
        """As OpenWireTransport.ack_many()."""
        taken: list[tuple[Event, Any, int]] = []
        unknown = None
        for event in events:
            entry = self._unacked.pop(event.delivery_tag, None)
            if entry is None:
                unknown = event
                break
            taken.append((event, *entry))
        if taken:
            self._ack_taken(taken)
        if unknown is not None:
            raise TransportError(f"cannot ack message {unknown.message_id}: unknown delivery tag "
                                 f"{unknown.delivery_tag} (already acked, or from another connection)")

    def _ack_taken(self, taken: list[tuple[Event, Any, int]]) -> None:
        state = self._state
        what = taken[0][0].message_id if len(taken) == 1 else f"{len(taken)} messages from {taken[0][0].message_id}"
        if state.lost is not None:
            state.sync()
            if self._batch is not None:
                self._batch.forget([event.delivery_tag for event, _, _ in taken])
            raise ConnectionLostError(f"ack of {what} failed: connection to the broker lost: {state.lost}")
        # Failover counts the interruption before it reconnects, so an unchanged count means
        # these messages were delivered on the connection in place (or it is being torn down right
        # now, and failover drops the acks itself).
        current = int(state.interrupts.get())
        fresh = [(event, message) for event, message, epoch in taken if epoch == current]
        if len(fresh) < len(taken):
            stale = [event for event, _, epoch in taken if epoch != current]
            for event in stale:
                log.debug("not acknowledging %s: delivered before the connection was interrupted; "
                          "the broker redelivers it", event.message_id)
            if self._batch is not None:
                self._batch.forget([event.delivery_tag for event in stale])
        try:
            if self._batch is not None:
                self._batch.ack_all([event.delivery_tag for event, _ in fresh])
            else:
                for event, message in fresh:
                    what = event.message_id
                    message.acknowledge()
        except classes().JException as exc:
            raise self._error(f"ack of {what} failed", exc) from exc

    def event(self, message: Any, epoch: int) -> Event:
        """Turn one javax.jms.Message into an Event, keeping the message for ack()."""
        kind = self._kinds.get(type(message))
        if kind is None:
            kind = self._kinds[type(message)] = next(
                (name for name, cls in classes().kinds if isinstance(message, cls)), "Message")
        self._next_tag += 1
        self._unacked[self._next_tag] = (message, epoch)
        stamp = message.getJMSTimestamp()
        fields: dict[str, Any] = dict(
            message_id=str(message.getJMSMessageID()), destination=self.destination,
            timestamp=int(stamp) or None, redelivered=bool(message.getJMSRedelivered()),
            transport=self.name, delivery_tag=self._next_tag)
        props = message_properties(message)
        if props:
            fields["headers"] = fields["properties"] = props
        if kind == "TextMessage":
            text = message.getText()
            try:
                body = b"" if text is None else str(text).encode("utf-8", "surrogatepass")
            except UnicodeError:  # an unpaired UTF-16 surrogate; Java's encoder writes '?' for it
                body = bytes(text.getBytes(classes().UTF_8))
                return Event(body=body, data=None, problem="text body holds an unpaired UTF-16 surrogate", **fields)
        elif kind == "BytesMessage":
            buffer = classes().ByteArray(int(message.getBodyLength()))
            message.readBytes(buffer)
            body = bytes(buffer)
        elif kind == "ObjectMessage":  # deserializing would run the sender's classes: never
            return Event(body=b"", data=None, problem="ObjectMessage refused (never deserialized)", **fields)
        else:
            return Event(body=b"", data=None, problem=f"unsupported JMS {kind}: only text and bytes "
                         "messages carry events", **fields)
        return make_event(body, self._max_bytes, **fields)

    def _error(self, what: str, exc: Any) -> TransportError:
        return runtime_error(what, exc, self._state.lost, self._state.config)
