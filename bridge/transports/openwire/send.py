"""Publishing over the OpenWire connection: a session of its own, producers cached per destination."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bridge.errors import MessageError
from bridge.transports.openwire.errors import runtime_error
from bridge.transports.openwire.java import AUTO_ACKNOWLEDGE, classes, jms_destination

if TYPE_CHECKING:
    from bridge.config import Destination
    from bridge.transports.openwire.state import ConnectionState


class Sender:
    """The producing side of one transport; its session is made on the first send."""

    def __init__(self, state: "ConnectionState") -> None:
        self._state = state
        self._session: Any = None
        self._producers: dict["Destination", Any] = {}

    def send(self, destination: "Destination", body: bytes, persistent: bool) -> None:
        """As OpenWireTransport.send()."""
        state = self._state
        state.check()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MessageError(f"cannot send a body that is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
        state.sync()
        java = classes()
        try:
            if self._session is None:
                self._session = state.connection.createSession(False, AUTO_ACKNOWLEDGE)
            producer = self._producers.get(destination)
            if producer is None:
                target = jms_destination(self._session, destination)
                producer = self._producers[destination] = self._session.createProducer(target)
            mode = java.PERSISTENT if persistent else java.NON_PERSISTENT
            producer.send(self._session.createTextMessage(text), mode, 4, 0)  # priority 4, no expiry
        except java.JException as exc:
            raise runtime_error(f"send to {destination} failed", exc, state.lost, state.config) from exc

    def reset(self) -> None:
        """Forget the session and producers (the connection is closed)."""
        self._session = None
        self._producers.clear()
