"""The dead-letter file: events that cannot be delivered are set aside here, then acknowledged.

One JSON object per line: reason, message id, destination, transport, headers, the body in
base64, and when it was set aside. The file is fsynced before the events are acknowledged.
Without a configured file, undeliverable events are refused loudly instead (nothing is lost:
they stay unacknowledged on the broker).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from pathlib import Path
from typing import IO, Sequence

from bridge.errors import BridgeError, SinkError
from bridge.event import Event

log = logging.getLogger(__name__)


def dead_letter_record(event: Event) -> dict[str, object]:
    """The JSON object written for an event set aside."""
    return {
        "reason": event.problem,
        "message_id": event.message_id,
        "destination": event.destination,
        "transport": event.transport,
        "redelivered": event.redelivered,
        "timestamp": event.timestamp,
        "headers": dict(event.headers),
        "body_base64": base64.b64encode(event.body).decode("ascii"),
        "set_aside_at": round(time.time(), 3),
    }


class DeadLetterFile:
    """Append-only, fsynced JSON-lines file of undeliverable events."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stream: IO[str] | None = None

    def put(self, events: Sequence[Event]) -> None:
        """Write ``events`` durably.

        Raises:
            BridgeError: No dead-letter file is configured (retrying cannot help).
            SinkError: The file cannot be written (retried by the runner).
        """
        if not events:
            return
        if self.path is None:
            raise BridgeError(
                f"event {events[0].message_id} cannot be delivered ({events[0].problem}) and no "
                "dead_letter file is configured; it stays unacknowledged on the broker"
            )
        try:
            if self._stream is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._stream = open(self.path, "a", encoding="utf-8")
            self._stream.write("".join(json.dumps(dead_letter_record(e)) + "\n" for e in events))
            self._stream.flush()
            os.fsync(self._stream.fileno())
        except OSError as exc:
            raise SinkError(f"cannot write dead-letter file {self.path}: {exc.strerror}") from exc
        for event in events:
            log.warning("set aside message %s: %s", event.message_id, event.problem)

    def close(self) -> None:
        """Close the file."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None
