"""Sinks that write one JSON object per line: ``stdout`` and ``jsonl`` (append to a file)."""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Sequence

from bridge.errors import SinkError
from bridge.event import Event
from bridge.sinks.base import Sink


def event_line(event: Event) -> str:
    """The JSON line written for an event."""
    return json.dumps(event.to_json(), separators=(",", ":"), ensure_ascii=False) + "\n"


class _LineSink(Sink):
    stream: IO[str] | None = None

    def write(self, events: Sequence[Event]) -> None:
        if self.stream is None:
            raise SinkError(f"{self.name} sink is not open")
        try:
            self.stream.write("".join(map(event_line, events)))
        except (OSError, ValueError) as exc:
            raise SinkError(f"{self.name} sink cannot write: {exc}") from exc

    def flush(self) -> None:
        if self.stream is None:
            return
        try:
            self.stream.flush()
            if self.config.fsync == "batch":
                os.fsync(self.stream.fileno())
        except (OSError, ValueError) as exc:
            raise SinkError(f"{self.name} sink cannot flush: {exc}") from exc


class StdoutSink(_LineSink):
    """JSON lines on standard output."""

    name = "stdout"

    def open(self) -> None:
        self.stream = sys.stdout

    def close(self) -> None:
        self.flush()


class JsonlSink(_LineSink):
    """JSON lines appended to ``sink.path``."""

    name = "jsonl"

    def open(self) -> None:
        path = self.config.path
        assert path is not None  # the config loader requires it for this sink
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.stream = open(path, "a", encoding="utf-8")
        except OSError as exc:
            raise SinkError(f"jsonl sink cannot open {path}: {exc.strerror}") from exc

    def close(self) -> None:
        if self.stream is not None:
            try:
                self.flush()
            finally:
                self.stream.close()
                self.stream = None
