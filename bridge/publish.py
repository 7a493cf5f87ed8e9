"""Publishing AtData-shaped events to a broker (``amq-bridge publish``), for demos and tests."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from typing import IO, Iterable, Iterator

from bridge.config import BridgeConfig, Destination
from bridge.connection import open_transport
from bridge.errors import BridgeError

log = logging.getLogger(__name__)


def sample_event(index: int, *, sequence: bool = False) -> dict[str, object]:
    """The ``index``-th generated event: an ``md5`` of an address and, on even indexes, a ``label``."""
    event: dict[str, object] = {"md5": hashlib.md5(f"user{index}@example.com".encode()).hexdigest()}
    if index % 2 == 0:
        event["label"] = hashlib.sha1(f"label-{index % 7}".encode()).hexdigest()
    if sequence:
        event["seq"] = index
    return event


def generated_bodies(count: int, start: int = 0, *, sequence: bool = False) -> Iterator[bytes]:
    """``count`` generated events as JSON bodies, numbered from ``start``."""
    for index in range(start, start + count):
        yield json.dumps(sample_event(index, sequence=sequence), separators=(",", ":")).encode()


def file_bodies(stream: IO[bytes]) -> Iterator[bytes]:
    """One body per non-blank line of a JSON-lines stream, sent as it is."""
    for line in stream:
        line = line.strip()
        if line:
            yield line


def publisher_config(config: BridgeConfig) -> BridgeConfig:
    """The config with a connection id of its own, so publishing never takes the consumer's id."""
    sub = config.subscription.model_copy(update={"connection_id": f"amq-bridge-publish-{os.getpid()}"})
    return config.model_copy(update={"subscription": sub})


def publish(
    config: BridgeConfig,
    destination: Destination,
    bodies: Iterable[bytes],
    *,
    rate: float | None = None,
    persistent: bool = False,
    total: int | None = None,
    progress: IO[str] | None = None,
) -> int:
    """Send ``bodies`` to ``destination``; returns how many were sent.

    Args:
        rate: Events per second to pace at; ``None`` sends as fast as possible.
        total: How many are expected, for the progress display.
        progress: A terminal to draw a progress line on, or ``None``.

    Raises:
        BridgeError: Connecting or sending failed.
    """
    transport = open_transport(publisher_config(config))
    sent, started = 0, time.monotonic()
    next_draw = started
    try:
        for body in bodies:
            if rate:
                ahead = started + sent / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            transport.send(destination, body, persistent=persistent)
            sent += 1
            if progress is not None and time.monotonic() >= next_draw:
                _draw(progress, sent, total, started)
                next_draw = time.monotonic() + 0.2
        transport.flush_sends(max(30.0, config.connect_timeout))  # exit 0 only once the broker has them
    finally:
        transport.close()
        if progress is not None:
            _draw(progress, sent, total, started)
            progress.write("\n")
    elapsed = time.monotonic() - started
    log.info("published %d events to %s via %s in %.2f s (%.0f/s)", sent, destination,
             transport.name, elapsed, sent / elapsed if elapsed else 0.0)
    return sent


def _draw(out: IO[str], sent: int, total: int | None, started: float) -> None:
    elapsed = max(time.monotonic() - started, 1e-9)
    of = f"/{total}" if total else ""
    out.write(f"\rpublished {sent}{of} ({sent / elapsed:.0f}/s)")
    out.flush()


def open_input(path: str) -> IO[bytes]:
    """Open a JSON-lines input file; ``-`` is standard input."""
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as exc:
        raise BridgeError(f"cannot read {path}: {exc.strerror}") from exc
