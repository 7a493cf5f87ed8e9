"""The ``sqlite`` sink: events in one SQLite table keyed by message id (no server needed).

The ``properties`` column holds the message's properties as JSON (NULL when it has none, or
with ``sink.include_properties: false``); a table made before that column existed gets it added
when the sink opens. A redelivered event is stored once (``INSERT OR IGNORE`` on the message id). The database runs in
WAL mode; each batch is one transaction, and the runner acknowledges the batch after the commit.
``sink.fsync: batch`` sets ``synchronous=FULL`` (a commit survives power loss); the default,
``NORMAL``, survives a crash of the process.

Several worker processes may share one database file: a writer waits up to ``BUSY_TIMEOUT_MS``
for another's transaction to end. A batch that fails (the database is locked for longer, the disk
is full) is rolled back and raised as a :class:`SinkError`; the runner writes it again later, on a
connection opened afresh if the old one is in doubt.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Sequence

from bridge.errors import SinkError
from bridge.event import Event
from bridge.properties import encode as encode_properties
from bridge.sinks.base import Sink

#: How long a write waits for another connection's transaction (another worker) to end.
BUSY_TIMEOUT_MS = 5000

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
    payload      TEXT NOT NULL,
    properties   TEXT
)
"""
INSERT = ("INSERT OR IGNORE INTO {table} (message_id, received_at, broker_time, destination, transport, "
          "redelivered, md5, label, payload, properties) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def event_row(event: Event, received_at: float, properties: bool = True) -> tuple[object, ...]:
    """The row stored for an event; ``md5`` and ``label`` are the event's own fields, when present;
    ``properties`` JSON, or NULL when the message has none (or ``properties`` is false)."""
    data = event.data or {}
    md5, label = data.get("md5"), data.get("label")
    return (event.message_id, received_at, event.timestamp, event.destination, event.transport,
            int(event.redelivered), md5 if isinstance(md5, str) else None,
            label if isinstance(label, str) else None,
            json.dumps(data, separators=(",", ":"), ensure_ascii=False),
            encode_properties(event.properties) if properties and event.properties else None)


def _add_missing_columns(db: sqlite3.Connection, table: str) -> None:
    """Bring a table made by an earlier version up to date: ``properties`` came later."""
    columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    if "properties" not in columns:
        db.execute(f"ALTER TABLE {table} ADD COLUMN properties TEXT")


class SqliteSink(Sink):
    """Batched, idempotent inserts into ``sink.table`` of the database at ``sink.path``."""

    name = "sqlite"

    db: sqlite3.Connection | None = None

    def open(self) -> None:
        self.insert = INSERT.format(table=self.config.table)
        self.pending: list[tuple[object, ...]] = []
        self._connect()

    def _connect(self) -> None:
        path = self.config.path
        assert path is not None  # the config loader requires it for this sink
        table = self.config.table
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                 check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise SinkError(f"sqlite sink cannot open {path}: {exc}") from exc
        try:
            db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_MS)}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={'FULL' if self.config.fsync == 'batch' else 'NORMAL'}")
            db.execute(SCHEMA.format(table=table))
            _add_missing_columns(db, table)
            db.execute(f"CREATE INDEX IF NOT EXISTS {table}_md5 ON {table} (md5)")
        except sqlite3.Error as exc:
            db.close()
            raise SinkError(f"sqlite sink cannot open {path}: {exc}") from exc
        self.db = db

    def write(self, events: Sequence[Event]) -> None:
        now, properties = time.time(), self.config.include_properties
        self.pending.extend(event_row(event, now, properties) for event in events)

    def flush(self) -> None:
        rows, self.pending = self.pending, []  # a failed batch is written again by the retry
        if not rows:
            return
        if self.db is None:
            self._connect()
        db = self.db
        assert db is not None
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(self.insert, rows)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._roll_back()
            raise SinkError(f"sqlite sink cannot write {self.config.path}: {exc}") from exc

    def _roll_back(self) -> None:
        """Undo the failed batch; a connection that cannot even do that is opened afresh next time."""
        db = self.db
        if db is None or not db.in_transaction:  # SQLite may have rolled back by itself (disk full)
            return
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            self.db = None
            db.close()

    def recent_ids(self, limit: int) -> list[str]:
        """The newest ``limit`` message ids, by rowid (insertion order): an index walk from the end."""
        if self.db is None:
            self._connect()
        assert self.db is not None
        try:
            rows = self.db.execute(f"SELECT message_id FROM {self.config.table} ORDER BY rowid DESC LIMIT ?",
                                   (int(limit),)).fetchall()
        except sqlite3.Error as exc:
            raise SinkError(f"sqlite sink cannot read {self.config.path}: {exc}") from exc
        return [row[0] for row in rows]

    def close(self) -> None:
        db = self.db
        if db is not None:
            try:
                self.flush()
            finally:
                db.close()
                self.db = None
