"""When each event reached amq-bridge's sink, seen from outside the bridge (no hook needed in it).

The ``jsonl`` sink appends lines and flushes them before acknowledging; the ``sqlite`` sink commits
one transaction per batch. An inotify watch on the folder holding the sink wakes a thread at every
write; the thread reads what is new (jsonl: the appended bytes; sqlite: the rows past the last
rowid seen, through a read-only connection) and stamps each new event with the wall-clock time
taken right after that read. So for every event, observed time >= time it was written (flushed or
committed), and the difference is this thread's wake-up delay: well under a millisecond on an
idle machine, more on a busy one. It never under-states a latency.

Without inotify (not Linux), the folder is scanned every 2 ms instead.

Counting only (the throughput runs, no latencies), a scan follows the one before by at least
``COUNT_SCAN_GAP`` (5 ms): SQLite writes each page of a commit with a write of its own, each of
which wakes an inotify watch, and a scan of the database at each wake took 15% of a CPU from a
bridge draining into sqlite at 38,000 events/s (5 µs per event; 0.7 µs for jsonl), on 2 CPUs
the bridge and broker share. The last count may then be seen up to 5 ms late: 0.1% of a run.

The ``postgres`` sink's table is made by the benchmark beforehand (:func:`prepare_postgres`): the
sink's own schema plus an identity column ``bench_n`` (indexed) and a statement trigger that, at
each insert, NOTIFYs the broker times of the rows it inserted (its transition table; a
notification is delivered only once its transaction committed). The thread LISTENs and stamps
the events of each notification when it receives it, with no query of its own: a ``SELECT`` of
the new rows at each notification kept a second server process as busy as the sink's, added
4-7 ms to the p50 seen at 5,000 events/s (the query: 0.5-1 ms, 12-16 at its p99) and slowed the
sink's own commits on 2 CPUs (their p99 from the broker timestamp, 25 ms with it, 10 without).
Only a statement too large for one notification (8,000 bytes: more than about 2,000 rows) sends
the range of its ``bench_n`` instead, and those rows are read.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import select
import sqlite3
import subprocess
import threading
from pathlib import Path

from bench_lib.procs import now_ms

IN_MODIFY, IN_CREATE, IN_MOVED_TO = 0x2, 0x100, 0x80
#: Counting only: the least time between two scans (seconds).
COUNT_SCAN_GAP = 0.005
_TIMESTAMP = re.compile(rb'"timestamp":(\d+)')


def _inotify(folder: Path) -> int | None:
    """An inotify descriptor watching ``folder`` for writes, or None where there is none."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    if libc.inotify_add_watch(fd, os.fsencode(folder), IN_MODIFY | IN_CREATE | IN_MOVED_TO) < 0:
        os.close(fd)
        return None
    return fd


class SinkWatch:
    """Counts the events in a sink as they become durable; optionally their latencies.

    Args:
        path: The sink's file (jsonl) or database (sqlite), in a folder of its own.
        kind: ``jsonl`` or ``sqlite``.
        latencies: Keep, for each event, observed time minus its broker timestamp (ms).
        table: The sqlite sink's table.
    """

    def __init__(self, path: Path, kind: str, *, latencies: bool = False, table: str = "events",
                 url: str = "") -> None:
        self.path, self.kind, self.table, self.url = path, kind, table, url
        self._last_n = 0
        self.count = 0
        self.first_ms: float | None = None  # when the first event was seen
        self.done_ms: float | None = None  # when ``target`` events were seen
        self.latencies: list[float] | None = [] if latencies else None
        self.target = 0
        self._reached = threading.Event()
        self._stop = threading.Event()
        self._file = None
        self._partial = b""
        self._db: sqlite3.Connection | None = None
        self._fd = _inotify(path.parent) if kind != "postgres" else None
        self._pg = None
        self._thread = threading.Thread(target=self._run, name="sink-watch", daemon=True)

    def start(self, target: int) -> "SinkWatch":
        self.target = target
        self._thread.start()
        return self

    def wait(self, timeout: float, process: subprocess.Popen[bytes]) -> bool:
        """Wait until ``target`` events were seen; False if ``process`` exited or time ran out first."""
        deadline = now_ms() + timeout * 1000
        while not self._reached.wait(0.2):
            if now_ms() > deadline:
                return False
            if process.poll() is not None:
                return self._reached.wait(0.5)  # its last write may still be unread
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _run(self) -> None:
        try:
            self._watch()
        finally:  # the sqlite connection belongs to this thread
            if self._file is not None:
                self._file.close()
            if self._db is not None:
                self._db.close()
            if self._pg is not None:
                self._pg.close()

    def _watch(self) -> None:
        if self.kind == "postgres":
            return self._watch_postgres()
        poller = select.poll()
        if self._fd is not None:
            poller.register(self._fd, select.POLLIN)
        while not self._stop.is_set():
            if self._fd is None:
                self._stop.wait(0.002)
            elif poller.poll(50):
                try:
                    while os.read(self._fd, 65536):
                        pass
                except BlockingIOError:
                    pass
                except OSError as exc:
                    if exc.errno != errno.EAGAIN:
                        raise
            self._scan()
            if self.latencies is None:
                self._stop.wait(COUNT_SCAN_GAP)

    def _watch_postgres(self) -> None:
        import psycopg

        self._pg = psycopg.connect(self.url, autocommit=True)
        self._pg.execute(f"LISTEN {self.table}")
        while not self._stop.is_set():
            # the generator holds the connection's lock: a "rows:" notification is read after it
            payloads = [note.payload for note in self._pg.notifies(timeout=0.05, stop_after=1)]
            for payload in payloads:
                self._add(*self._read_notification(payload))

    def _read_notification(self, payload: str) -> tuple[int, list[int]]:
        """The events of one notification of :func:`prepare_postgres`'s trigger: ``BASE:D1,D2,...``
        (broker time = BASE + D, ``n`` for none), or ``rows:FIRST:LAST`` (``bench_n``) to be read."""
        head, _, rest = payload.partition(":")
        if head == "rows":
            assert self._pg is not None
            first, last = (int(x) for x in rest.split(":"))
            rows = self._pg.execute(f"SELECT broker_time FROM {self.table} WHERE bench_n BETWEEN %s AND %s",
                                    (first, last)).fetchall()
            return len(rows), [stamp for (stamp,) in rows if stamp is not None]
        items = rest.split(",")
        if self.latencies is None or not head:
            return len(items), []
        base = int(head)
        return len(items), [base + int(item) for item in items if item != "n"]

    def _scan(self) -> None:
        self._add(*(self._read_jsonl() if self.kind == "jsonl" else self._read_sqlite()))

    def _add(self, new: int, stamps: list[int]) -> None:
        """Count ``new`` events seen now, with the broker times ``stamps``."""
        if not new:
            return
        seen = now_ms()
        if self.first_ms is None:
            self.first_ms = seen
        self.count += new
        if self.latencies is not None:
            self.latencies.extend(seen - stamp for stamp in stamps)
        if self.count >= self.target and self.done_ms is None:
            self.done_ms = seen
            self._reached.set()

    def _read_jsonl(self) -> tuple[int, list[int]]:
        if self._file is None:
            try:
                self._file = open(self.path, "rb")
            except FileNotFoundError:
                return 0, []
        data = self._file.read()
        if not data:
            return 0, []
        *lines, self._partial = (self._partial + data).split(b"\n")
        if self.latencies is None:
            return len(lines), []
        stamps = []
        for line in lines:
            match = _TIMESTAMP.search(line)
            if match:
                stamps.append(int(match[1]))
        return len(lines), stamps

    def _read_sqlite(self) -> tuple[int, list[int]]:
        try:
            if self._db is None:
                if not self.path.exists():
                    return 0, []
                self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
            if self.latencies is None:
                (last,) = self._db.execute(f"SELECT coalesce(max(rowid), 0) FROM {self.table}").fetchone()
                return last - self.count, []
            rows = self._db.execute(f"SELECT broker_time FROM {self.table} WHERE rowid > ? ORDER BY rowid",
                                    (self.count,)).fetchall()
        except sqlite3.Error:  # not created yet, or busy for a moment: the next write wakes us again
            return 0, []
        return len(rows), [stamp for (stamp,) in rows if stamp is not None]


#: The trigger function: one notification per insert statement, holding the broker times of its rows
#: as offsets from the smallest (``BASE:D1,D2,...``), or, past what a notification can hold, the
#: range of their ``bench_n`` (``rows:FIRST:LAST``).
NOTIFY_FUNCTION = """
CREATE FUNCTION {table}_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    base bigint;
    body text;
BEGIN
    SELECT min(broker_time) INTO base FROM new_rows;
    SELECT coalesce(base::text, '') || ':' || string_agg(coalesce((broker_time - base)::text, 'n'), ',')
        INTO body FROM new_rows;
    IF body IS NULL THEN  -- no row inserted (every one stored already)
        RETURN NULL;
    END IF;
    IF octet_length(body) > 7900 THEN
        SELECT 'rows:' || min(bench_n) || ':' || max(bench_n) INTO body FROM new_rows;
    END IF;
    PERFORM pg_notify('{table}', body);
    RETURN NULL;
END $$
"""


def prepare_postgres(url: str, table: str) -> None:
    """Create the postgres sink's table as the sink would, plus what :class:`SinkWatch` follows."""
    import psycopg

    from bridge.sinks.postgres import SCHEMA

    with psycopg.connect(url, autocommit=True) as db:
        db.execute(SCHEMA.format(table=table))
        db.execute(f"ALTER TABLE {table} ADD COLUMN bench_n bigint GENERATED ALWAYS AS IDENTITY")
        db.execute(f"CREATE INDEX {table}_bench_n ON {table} (bench_n)")
        db.execute(NOTIFY_FUNCTION.format(table=table))
        db.execute(f"CREATE TRIGGER {table}_notify AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_notify()")
