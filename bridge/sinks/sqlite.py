"""The ``sqlite`` sink: events in one SQLite table keyed by message id (no server needed).

Features:
    A redelivered event is stored once (``INSERT OR IGNORE`` on the message id). The ``payload``
    column is the message body as published (it decoded to a JSON object, so SQLite's JSON
    functions read it); ``md5`` and ``label`` are copied from it into columns. Each batch is one
    transaction, and the runner acknowledges the batch after the commit.

Options:
    ``sink.fsync: batch`` sets ``synchronous=FULL`` (a commit survives power loss); the default,
    ``NORMAL``, survives a crash of the process. ``sink.md5_index`` (default true) keeps an index
    on ``md5``, so a lookup by md5 is fast; it is most of the cost of a write (random keys: nearly
    every event dirties an index page of its own), see README. False creates none (an index
    already there is kept, and named in a log line: ``DROP INDEX <table>_md5`` removes it).

The database runs in WAL mode. Checkpoints (copying the WAL back into the database) are off the
write path: SQLite's automatic checkpoint, which runs inside a commit, is turned off, and a thread
of the sink with its own connection runs a PASSIVE checkpoint (it never blocks a writer or a
reader) at most every ``CHECKPOINT_SECONDS`` while commits come, and not at all while idle. Once
the WAL file is past ``JOURNAL_SIZE_LIMIT`` (the passive checkpoints never copied all of it, so it
was never started afresh), the thread checkpoints after every commit; past twice that (a drain),
the writer waits for one checkpoint after its commit, which bounds the file
(:meth:`SqliteSink._bound_wal`).

The ``properties`` column holds the message's properties as JSON (NULL when it has none, or
with ``sink.include_properties: false``); a table made before that column existed gets it added
when the sink opens.

A batch is one ``INSERT`` statement of all its rows (up to ``MAX_ROWS_PER_STATEMENT``, more in one
transaction): one call into SQLite, which runs without Python's GIL, so the runner can flush a
batch on a thread of its own while it receives the next (:attr:`SqliteSink.background_flush`).

Several worker processes may share one database file: a writer waits up to ``BUSY_TIMEOUT_MS``
for another's transaction to end. A batch that fails (the database is locked for longer, the disk
is full) is rolled back and raised as a :class:`SinkError`; the runner writes it again later, on a
connection opened afresh if the old one is in doubt.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from time import monotonic
from typing import Sequence

from bridge.errors import SinkError
from bridge.event import Event
from bridge.properties import encode as encode_properties
from bridge.sinks.base import Sink

log = logging.getLogger(__name__)

#: How long a write waits for another connection's transaction (another worker) to end.
BUSY_TIMEOUT_MS = 5000
#: The least time between two checkpoints of the checkpoint thread.
CHECKPOINT_SECONDS = 0.5
#: The WAL file is cut back to this size when a commit starts it afresh; past it the checkpoint
#: thread hurries, past twice it the writer waits for a checkpoint (see SqliteSink._bound_wal).
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024
#: The longest a writer waits for that checkpoint.
CATCH_UP_TIMEOUT = 10.0

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
          "redelivered, md5, label, payload, properties) VALUES ")
#: The columns of a row, each one ``?`` of the statement.
VALUES_PER_ROW = 10
ROW_PLACEHOLDERS = "(" + ",".join("?" * VALUES_PER_ROW) + ")"
#: The most rows one statement inserts (the statement is prepared once per row count).
MAX_ROWS_PER_STATEMENT = 500


def event_row(event: Event, received_at: float, properties: bool = True) -> tuple[object, ...]:
    """The row stored for an event; ``md5`` and ``label`` are the event's own fields, when present;
    ``properties`` JSON, or NULL when the message has none (or ``properties`` is false).

    The payload is the body as published: it decoded to a JSON object, so it is UTF-8 JSON.
    """
    data = event.data or {}
    md5, label = data.get("md5"), data.get("label")
    return (event.message_id, received_at, event.timestamp, event.destination, event.transport,
            int(event.redelivered), md5 if type(md5) is str else None,
            label if type(label) is str else None, event.body.decode("utf-8"),
            encode_properties(event.properties) if properties and event.properties else None)


def _add_missing_columns(db: sqlite3.Connection, table: str) -> None:
    """Bring a table made by an earlier version up to date: ``properties`` came later."""
    columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    if "properties" not in columns:
        db.execute(f"ALTER TABLE {table} ADD COLUMN properties TEXT")


class Checkpointer:
    """A thread running ``PRAGMA wal_checkpoint(PASSIVE)`` on a connection of its own.

    :meth:`poke` after a commit asks for a checkpoint; the thread runs one at most every
    ``interval`` seconds, and sleeps while nobody pokes.

    A passive checkpoint copies what it can while commits go on; under a steady stream of commits
    it may never copy the whole WAL, and only a WAL copied whole is started afresh by the next
    commit: the file would grow without end (779 MB for 200,000 events here). When the file has
    grown too large, the writer sets :attr:`hurrying` or calls :meth:`catch_up`, see
    :meth:`SqliteSink._bound_wal`.
    """

    def __init__(self, path: str, interval: float) -> None:
        self.path, self.interval = path, interval
        self._cond = threading.Condition()
        self._wanted = self._hurry = self._stopping = False
        #: Checkpoint after every commit, with no interval (see :meth:`SqliteSink._bound_wal`).
        self.hurrying = False
        self._started = self._finished = 0  # checkpoints begun and ended
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        with self._cond:
            self._wanted = True
            self._cond.notify()

    def catch_up(self, timeout: float) -> bool:
        """Run a checkpoint now (whatever the interval) and wait up to ``timeout`` seconds for it
        to end; false if it did not. The caller makes no commit meanwhile."""
        with self._cond:
            wanted = self._started + 1
            self._wanted = self._hurry = True
            self._cond.notify()
            return self._cond.wait_for(lambda: self._finished >= wanted or self._stopping, timeout)

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        complained = False
        due = 0.0  # the monotonic time before which no unhurried checkpoint runs
        while True:
            with self._cond:
                while not self._stopping and not (self._wanted and (self._hurry or self.hurrying
                                                                    or monotonic() >= due)):
                    self._cond.wait(max(due - monotonic(), 0) if self._wanted else None)
                if self._stopping:
                    break
                self._wanted = self._hurry = False
                self._started += 1
            try:
                if db is None:
                    db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                complained = False
            except sqlite3.Error as exc:  # the disk is full, the file is gone: the writes will say so
                if not complained:
                    log.warning("sqlite sink: checkpoint of %s failed: %s", self.path, exc)
                    complained = True
                if db is not None:
                    db.close()
                    db = None
            due = monotonic() + self.interval
            with self._cond:
                self._finished += 1
                self._cond.notify_all()
        if db is not None:
            db.close()

    def stop(self) -> None:
        """End the thread (it finishes a checkpoint under way)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(30)


class SqliteSink(Sink):
    """Batched, idempotent inserts into ``sink.table`` of the database at ``sink.path``."""

    name = "sqlite"

    db: sqlite3.Connection | None = None
    checkpointer: Checkpointer | None = None

    #: A flush is one SQLite call per statement, which releases the GIL: the runner may run it
    #: on a thread of its own while it receives the next batch.
    background_flush = True

    def open(self) -> None:
        self.insert = INSERT.format(table=self.config.table)
        self.statements: dict[int, str] = {}  # row count -> its INSERT statement
        self.pending: list[object] = []  # the values of the rows, row after row
        self.wal = f"{self.config.path}-wal"
        self.wal_limit = 2 * JOURNAL_SIZE_LIMIT  # the WAL file's size past which _bound_wal waits
        self._connect()

    def _statement(self, rows: int) -> str:
        """The INSERT statement of ``rows`` rows (the sqlite3 module keeps the prepared statements
        of the last 128 texts)."""
        statement = self.statements.get(rows)
        if statement is None:
            statement = self.statements[rows] = self.insert + ",".join((ROW_PLACEHOLDERS,) * rows)
        return statement

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
            db.execute("PRAGMA wal_autocheckpoint=0")  # the checkpoint thread does it, off the write path
            db.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
            db.execute(SCHEMA.format(table=table))
            _add_missing_columns(db, table)
            if self.config.md5_index:
                db.execute(f"CREATE INDEX IF NOT EXISTS {table}_md5 ON {table} (md5)")
            elif db.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
                            (f"{table}_md5",)).fetchone():
                log.info("sqlite sink: sink.md5_index is false, but %s already has index %s_md5: it is kept, "
                         "and costs as much as ever (DROP INDEX %s_md5 removes it)", path, table, table)
        except sqlite3.Error as exc:
            db.close()
            raise SinkError(f"sqlite sink cannot open {path}: {exc}") from exc
        self.db = db
        if self.checkpointer is None:
            self.checkpointer = Checkpointer(str(path), CHECKPOINT_SECONDS)

    def write(self, events: Sequence[Event]) -> None:
        now, properties, extend = time.time(), self.config.include_properties, self.pending.extend
        for event in events:
            extend(event_row(event, now, properties))

    def flush(self) -> None:
        values, self.pending = self.pending, []  # a failed batch is written again by the retry
        if not values:
            return
        if self.db is None:
            self._connect()
        db = self.db
        assert db is not None
        rows, step = len(values) // VALUES_PER_ROW, MAX_ROWS_PER_STATEMENT * VALUES_PER_ROW
        try:
            if rows <= MAX_ROWS_PER_STATEMENT:  # one statement: a transaction of its own
                db.execute(self._statement(rows), values)
            else:
                db.execute("BEGIN IMMEDIATE")
                for start in range(0, len(values), step):
                    chunk = values[start:start + step]
                    db.execute(self._statement(len(chunk) // VALUES_PER_ROW), chunk)
                db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._roll_back()
            raise SinkError(f"sqlite sink cannot write {self.config.path}: {exc}") from exc
        checkpointer = self.checkpointer
        if checkpointer is not None:
            checkpointer.poke()
            self._bound_wal(checkpointer)

    def _bound_wal(self, checkpointer: Checkpointer) -> None:
        """Keep the WAL from growing without end. Past ``JOURNAL_SIZE_LIMIT`` (the WAL was not
        started afresh since it held that much), the checkpoint thread runs after every commit,
        with no interval, until it is: each checkpoint then has little to copy, and one that ends
        before the next commit lets that commit start the WAL afresh and cut the file back. Past
        twice the limit (commits back to back: a drain), wait, with no commit of ours under way,
        for a checkpoint that copies all of it. A reader holding an old snapshot can keep the WAL
        from starting afresh: then this waits again only once the file has grown by the limit."""
        try:
            size = os.stat(self.wal).st_size
        except OSError:
            return
        checkpointer.hurrying = size > JOURNAL_SIZE_LIMIT
        if size <= JOURNAL_SIZE_LIMIT:
            self.wal_limit = 2 * JOURNAL_SIZE_LIMIT
        elif size > self.wal_limit:
            checkpointer.catch_up(CATCH_UP_TIMEOUT)
            self.wal_limit = size + JOURNAL_SIZE_LIMIT

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
        checkpointer, self.checkpointer = self.checkpointer, None
        db = self.db
        try:
            if db is not None:
                self.flush()
        finally:
            if checkpointer is not None:
                checkpointer.stop()
            if db is not None:
                db.close()  # the last connection to close checkpoints the whole WAL
                self.db = None
