"""The ``sqlite`` sink: events in one SQLite table keyed by message id (no server needed).

A redelivered event is stored once (``INSERT OR IGNORE`` on the message id). The database runs in
WAL mode; each batch is one transaction, and the runner acknowledges the batch after the commit.
``sink.fsync: batch`` sets ``synchronous=FULL`` (a commit survives power loss); the default,
``NORMAL``, survives a crash of the process.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Sequence

from bridge.errors import SinkError
from bridge.event import Event
from bridge.sinks.base import Sink

SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    message_id   TEXT PRIMARY KEY,
    received_at  REAL NOT NULL,
    broker_time  INTEGER,
    destination  TEXT NOT NULL,
    transport    TEXT NOT NULL,
    redelivered  INTEGER NOT NULL,
    md5          TEXT,
    label        TEXT,
    payload      TEXT NOT NULL
)
"""
INSERT = ("INSERT OR IGNORE INTO {table} (message_id, received_at, broker_time, destination, transport, "
          "redelivered, md5, label, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")


def event_row(event: Event, received_at: float) -> tuple[object, ...]:
    """The row stored for an event; ``md5`` and ``label`` are the event's own fields, when present."""
    data = event.data or {}
    md5, label = data.get("md5"), data.get("label")
    return (event.message_id, received_at, event.timestamp, event.destination, event.transport,
            int(event.redelivered), md5 if isinstance(md5, str) else None,
            label if isinstance(label, str) else None,
            json.dumps(data, separators=(",", ":"), ensure_ascii=False))


class SqliteSink(Sink):
    """Batched, idempotent inserts into ``sink.table`` of the database at ``sink.path``."""

    name = "sqlite"

    def open(self) -> None:
        path = self.config.path
        assert path is not None  # the config loader requires it for this sink
        table = self.config.table
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA synchronous={'FULL' if self.config.fsync == 'batch' else 'NORMAL'}")
            self.db.execute("PRAGMA busy_timeout=5000")
            self.db.execute(SCHEMA.format(table=table))
            self.db.execute(f"CREATE INDEX IF NOT EXISTS {table}_md5 ON {table} (md5)")
        except sqlite3.Error as exc:
            raise SinkError(f"sqlite sink cannot open {path}: {exc}") from exc
        self.insert = INSERT.format(table=table)
        self.pending: list[tuple[object, ...]] = []

    def write(self, events: Sequence[Event]) -> None:
        now = time.time()
        self.pending.extend(event_row(event, now) for event in events)

    def flush(self) -> None:
        rows, self.pending = self.pending, []  # a failed batch is written again by the retry
        if not rows:
            return
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.executemany(self.insert, rows)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise SinkError(f"sqlite sink cannot write {self.config.path}: {exc}") from exc

    def close(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            self.flush()
            db.close()
            self.db = None
