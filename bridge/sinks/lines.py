"""Sinks that write one JSON object per line: ``stdout`` and ``jsonl`` (append to a file).

The ``jsonl`` sink:

Features:
    Appends one line per event to ``sink.path``; the runner acknowledges a batch once
    :meth:`JsonlSink.flush` returned. An event the broker delivers again (after a crash, or a
    failed write) is recognised by the runner's window of recent message ids, seeded from the
    file's last lines when the runner starts: it is written once.

De-duplication across restarts: :meth:`JsonlSink.recent_ids` reads the ids of the file's last
lines from its end (:mod:`bridge.sinks.tail`), then of the newest rotated files while short.

Options:
    ``fsync``: ``batch`` fsyncs the file before each acknowledgement (and the directory after a
    rotation); ``never`` hands the lines to the operating system only.
    ``rotate_bytes`` / ``rotate_seconds``: at a batch boundary, when the next batch would take
    the file past ``rotate_bytes`` or the file has been open for ``rotate_seconds``, it is
    renamed to ``<name>.<UTC time, 20261123T101500Z>`` (``.1``, ``.2``... on a collision) and a
    fresh file is started. ``keep``: the newest N rotated files are kept; 0 keeps all.

A failed write or flush closes the file; the next attempt opens it again, first cutting off a
torn last line (never acknowledged: only whole batches are), so a transient error heals itself.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import sys
import time
from pathlib import Path
from typing import IO, BinaryIO, Sequence

from bridge.errors import SinkError
from bridge.event import Event
from bridge.properties import encode as _encode_properties
from bridge.sinks.base import Sink
from bridge.sinks.tail import tail_ids

log = logging.getLogger(__name__)

#: The suffix a rotated file gets: the UTC time of the rotation, then a counter on a collision.
ROTATED = re.compile(r"\.(\d{8}T\d{6}Z)(?:\.(\d+))?")


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _quoted(text: str) -> bytes:
    """A JSON string, UTF-8."""
    return _encode(text).encode()


def event_line(event: Event, properties: bool = True) -> bytes:
    """The JSON line written for an event: :meth:`Event.to_json`, UTF-8 (see :func:`event_lines`)."""
    return event_lines((event,), properties)


def event_lines(events: Sequence[Event], properties: bool = True) -> bytes:
    """The JSON lines written for these events, one :meth:`Event.to_json` per line, UTF-8.

    ``data`` is the message body itself, as published, when it is one line (it decoded to a JSON
    object, so it is valid JSON as it stands); a body with a line break in it is encoded again.
    This runs for every event, so the common case is built with one bytes format: a message id
    that needs no JSON escaping is written as it is, and the destination and transport parts are
    made once per batch. ``"properties"`` comes before ``data`` when the message has any and
    ``properties`` is true (``sink.include_properties``).
    """
    out: list[bytes] = []
    append = out.append
    parts: dict[tuple[str, str], tuple[bytes, bytes]] = {}
    for event in events:
        body = event.body
        if event.data is None or b"\n" in body or b"\r" in body:
            append(_encode(event.to_json(properties)).encode() + b"\n")
            continue
        message_id = event.message_id
        if message_id.isascii() and message_id.isprintable() and '"' not in message_id and "\\" not in message_id:
            quoted_id = message_id.encode()
        else:
            quoted_id = _encode(message_id).encode()[1:-1]
        key = (event.destination, event.transport)
        middle = parts.get(key)
        if middle is None:
            middle = parts[key] = (b',"destination":' + _quoted(key[0]), b',"transport":' + _quoted(key[1]))
        stamp = event.timestamp
        extra = b""
        if properties and event.properties:  # rare: the common case pays one test
            extra = b',"properties":' + _encode_properties(event.properties).encode()
        append(b'{"message_id":"%b"%b,"timestamp":%b,"redelivered":%b%b%b,"data":%b}\n' % (
            quoted_id, middle[0], b"null" if stamp is None else b"%d" % stamp,
            b"true" if event.redelivered else b"false", middle[1], extra, body.strip(b" \t")))
    return b"".join(out)


def _flush(stream: IO[str] | BinaryIO, fsync: str) -> None:
    """Hand what is written to the operating system; with ``fsync: batch``, to the disk too."""
    stream.flush()
    if fsync == "batch":
        os.fsync(stream.fileno())


def _why(exc: Exception) -> str:
    """The OS's words for an error (``No space left on device``), else its text."""
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


class StdoutSink(Sink):
    """JSON lines on standard output."""

    name = "stdout"
    stream: IO[str] | None = None

    def open(self) -> None:
        self.stream = sys.stdout

    def write(self, events: Sequence[Event]) -> None:
        if self.stream is None:
            raise SinkError("stdout sink is not open")
        try:
            self.stream.write(event_lines(events, self.config.include_properties).decode("utf-8"))
        except (OSError, ValueError) as exc:
            raise SinkError(f"stdout sink cannot write: {exc}") from exc

    def flush(self) -> None:
        if self.stream is None:
            return
        try:
            _flush(self.stream, self.config.fsync)
        except (OSError, ValueError) as exc:
            raise SinkError(f"stdout sink cannot flush: {exc}") from exc

    def close(self) -> None:
        self.flush()


def rotated_files(path: Path) -> list[Path]:
    """The rotated files of ``path``, oldest first."""
    found = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    for name in names:
        if name.startswith(path.name) and (match := ROTATED.fullmatch(name[len(path.name):])):
            found.append(((match[1], int(match[2] or 0)), path.parent / name))
    return [p for _, p in sorted(found)]


def jsonl_recent_ids(path: Path, limit: int) -> list[str]:
    """The message ids of the last lines of ``path``, then of its rotated files (newest first)
    while fewer than ``limit`` were found; newest first.

    Raises:
        SinkError: A file cannot be read.
    """
    found: list[str] = []
    for source in (path, *reversed(rotated_files(path))):
        if len(found) >= limit:
            break
        try:
            found += tail_ids(source, limit - len(found))
        except OSError as exc:
            raise SinkError(f"jsonl sink cannot read {source}: {_why(exc)}") from exc
    return found


class JsonlSink(Sink):
    """JSON lines appended to ``sink.path``, rotated by size or age, fsynced if asked."""

    name = "jsonl"
    stream: BinaryIO | None = None

    @property
    def path(self) -> Path:
        assert self.config.path is not None  # the config loader requires it for this sink
        return self.config.path

    def open(self) -> None:
        self._open()

    def recent_ids(self, limit: int) -> list[str]:
        return jsonl_recent_ids(self.path, limit)

    def _open(self) -> None:
        path = self.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            created = not path.exists()
            stream = open(path, "a+b")  # read too: to find a torn last line
            try:
                self.size = self._cut_torn_line(stream)
                if created and self.config.fsync == "batch":
                    self._fsync_dir()
            except BaseException:
                stream.close()
                raise
        except OSError as exc:
            raise SinkError(f"jsonl sink cannot open {path}: {_why(exc)}") from exc
        self.stream, self.opened_at, self.dirty = stream, time.monotonic(), False

    def _cut_torn_line(self, stream: BinaryIO) -> int:
        """Drop an unfinished last line (a write cut short); returns the file's size."""
        fd = stream.fileno()
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return 0
        end = pos = info.st_size
        while pos > 0:
            start = max(0, pos - 4096)
            cut = os.pread(fd, pos - start, start).rfind(b"\n")
            if cut >= 0:
                end = start + cut + 1
                break
            pos = end = start
        if end != info.st_size:
            log.warning("jsonl sink: cutting off an unfinished last line (%d bytes) of %s",
                        info.st_size - end, self.path)
            os.truncate(fd, end)
        return end

    def _abandon(self) -> None:
        """Close the file after an error, so the next attempt opens it afresh."""
        stream, self.stream = self.stream, None
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass  # the same error again, from the buffered part

    def write(self, events: Sequence[Event]) -> None:
        data = event_lines(events, self.config.include_properties)
        if self.stream is None:
            self._open()
        elif not self.dirty and self._due(len(data)):
            self._rotate()
        assert self.stream is not None
        try:
            self.stream.write(data)
        except (OSError, ValueError) as exc:
            self._abandon()
            raise SinkError(f"jsonl sink cannot write {self.path}: {_why(exc)}") from exc
        self.size += len(data)
        self.dirty = True

    def flush(self) -> None:
        if self.stream is None:
            return
        try:
            _flush(self.stream, self.config.fsync)
        except (OSError, ValueError) as exc:
            self._abandon()
            raise SinkError(f"jsonl sink cannot flush {self.path}: {_why(exc)}") from exc
        self.dirty = False

    def _due(self, incoming: int) -> bool:
        """Whether the file is rotated before ``incoming`` more bytes are written to it."""
        if self.size == 0:
            return False
        cfg = self.config
        return bool((cfg.rotate_bytes and self.size + incoming > cfg.rotate_bytes)
                    or (cfg.rotate_seconds and time.monotonic() - self.opened_at >= cfg.rotate_seconds))

    def _rotate(self) -> None:
        """Rename the (flushed) file aside, start a fresh one, and drop the oldest rotated files."""
        path = self.path
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target, n = path.with_name(f"{path.name}.{stamp}"), 0
        while target.exists():
            n += 1
            target = path.with_name(f"{path.name}.{stamp}.{n}")
        self._abandon()
        try:
            os.rename(path, target)
        except OSError as exc:
            raise SinkError(f"jsonl sink cannot rotate {path} to {target.name}: {_why(exc)}") from exc
        self._open()  # fsyncs the directory (rename and new file) under fsync: batch
        if self.config.keep:
            for old in rotated_files(path)[:-self.config.keep]:
                try:
                    old.unlink()
                except OSError:
                    pass  # removed by someone else, or not ours to remove: not worth failing a batch

    def _fsync_dir(self) -> None:
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        if self.stream is not None:
            try:
                self.flush()
            finally:
                self._abandon()
