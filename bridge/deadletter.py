"""The dead-letter file: events that cannot be delivered are set aside here, then acknowledged.

One JSON object per line: reason, message id, destination, transport, headers, the body in
base64, and when it was set aside. The file is fsynced before the events are acknowledged.
Without a configured file, undeliverable events are refused loudly instead (nothing is lost:
they stay unacknowledged on the broker).

``amq-bridge replay`` (:mod:`bridge.replay`) takes records out of the file again, by writing
what remains to a temporary file and renaming it over the old one. Writers and readers hold
an exclusive ``flock`` on the file while they use it, and a writer whose file was replaced
meanwhile (another inode at the path) opens the new one, so a running bridge and a replay
never tear each other's records.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import time
from pathlib import Path
from typing import IO, BinaryIO, Iterator, Sequence

from bridge.errors import BridgeError, SinkError
from bridge.event import Event
from bridge.sinks.tail import stream_tail_ids

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


@contextlib.contextmanager
def locked(path: Path, mode: str = "ab") -> Iterator[BinaryIO]:
    """``path`` opened with ``mode`` and held under an exclusive ``flock`` until the block ends.

    When the file at ``path`` was replaced while waiting for the lock (a replay renamed its
    rewrite over it), the new file is opened and locked instead.
    """
    while True:
        stream = open(path, mode)
        try:
            fcntl.flock(stream.fileno(), fcntl.LOCK_EX)
            try:
                same = os.stat(path).st_ino == os.fstat(stream.fileno()).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            stream.close()
            raise
        if same:
            break
        stream.close()
    try:
        yield stream
    finally:
        stream.close()  # releases the lock


class DeadLetterFile:
    """Append-only, fsynced JSON-lines file of undeliverable events."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stream: IO[bytes] | None = None

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
        data = "".join(json.dumps(dead_letter_record(e)) + "\n" for e in events).encode("utf-8")
        try:
            self._write(data)
        except OSError as exc:
            self.close()
            raise SinkError(f"cannot write dead-letter file {self.path}: {exc.strerror}") from exc
        for event in events:
            log.warning("set aside message %s: %s", event.message_id, event.problem)

    def _write(self, data: bytes) -> None:
        assert self.path is not None
        if self._stream is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._stream = open(self.path, "ab")
        while True:
            fd = self._stream.fileno()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                try:
                    current = os.stat(self.path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    current = False
                if current:
                    self._stream.write(data)
                    self._stream.flush()
                    os.fsync(fd)
                    return
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            # replaced by a replay (or removed): write to the file now at the path
            self._stream.close()
            self._stream = open(self.path, "ab")

    def recent_ids(self, limit: int) -> list[str]:
        """The message ids of the newest ``limit`` records, newest first (none without a file).

        Raises:
            SinkError: The file exists but cannot be read.
        """
        if self.path is None or limit <= 0 or not self.path.exists():
            return []
        try:
            with locked(self.path, "rb") as stream:
                return stream_tail_ids(stream, limit)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise SinkError(f"cannot read dead-letter file {self.path}: {exc.strerror}") from exc

    def close(self) -> None:
        """Close the file."""
        if self._stream is not None:
            try:
                self._stream.close()
            except OSError:
                pass
            self._stream = None


def read_lines(path: Path) -> list[bytes]:
    """Every line of the dead-letter file (without its newline), read under the lock; none
    when it does not exist."""
    try:
        with locked(path, "rb") as stream:
            return stream.read().splitlines()
    except FileNotFoundError:
        return []


def remove_lines(path: Path, taken: Sequence[bytes]) -> int:
    """Take these lines (one occurrence each) out of the dead-letter file; returns how many remain.

    Under the lock: what the file holds now (a running bridge may have appended since it was
    read) minus ``taken`` is written to ``<path>.tmp``, fsynced and renamed over the file, and
    the directory fsynced. A crash at any point leaves either the old file or the new one.
    """
    pending: dict[bytes, int] = {}
    for line in taken:
        pending[line] = pending.get(line, 0) + 1
    tmp = path.with_name(path.name + ".tmp")
    with locked(path, "rb") as stream:
        kept = []
        for line in stream.read().splitlines():
            if pending.get(line):
                pending[line] -= 1
            elif line.strip():
                kept.append(line)
        with open(tmp, "wb") as out:
            out.write(b"".join(line + b"\n" for line in kept))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return len(kept)
