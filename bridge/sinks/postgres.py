"""The ``postgres`` sink: events in one PostgreSQL table keyed by message id.

Features:
    The table (``sink.table``, default ``events``) is created when missing, with the columns of
    the ``sqlite`` sink: ``message_id`` (primary key), ``received_at`` (timestamptz),
    ``broker_time`` (ms since the epoch), ``destination``, ``transport``, ``redelivered``
    (boolean), ``md5`` (indexed, unless ``sink.md5_index: false``), ``label``, ``payload``
    (jsonb: the body as published) and ``properties`` (jsonb: the message's properties, NULL when
    it has none or with ``sink.include_properties: false``; a table made before this column existed
    gets it added when the sink connects). Each batch is one ``COPY`` into the table, one transaction;
    when that fails on the primary key (an event of the batch is stored already: a redelivery),
    the batch goes again in one transaction: ``COPY`` into a temporary table, then ``INSERT ...
    SELECT ... ON CONFLICT (message_id) DO NOTHING``, so a redelivered event is stored once. The
    runner acknowledges the batch after the commit. ``synchronous_commit`` is the server's (or
    the role's) setting: off, a commit is acknowledged before it reaches the server's disk.
    A lost connection (a database restart)
    is a :class:`SinkError`: the connection is dropped and opened again on the runner's next
    attempt, which writes the same batch again.

    Across restarts the primary key is what keeps a redelivered event out: ``recent_ids`` is
    the base class's (none), because the table has no index giving the newest rows cheaply (an
    ``ORDER BY received_at`` would sort the whole table at every start), and ``ON CONFLICT``
    already makes a second write of the same message id a no-op. Such a redelivery is counted
    as delivered, not as a duplicate, in the runner's stats.

Connection String:
    ``sink.url: postgresql://USER@HOST:PORT/DATABASE`` (any libpq connection string). Keep the
    password out of the file: ``${ENV_VAR}`` in the url, or ``PGPASSWORD`` / ``~/.pgpass``.
    Messages never show the password.

Options:
    ``connect_timeout`` in the url overrides the default of 10 s. PostgreSQL's jsonb cannot hold
    the character U+0000 nor a lone surrogate: a ``\\u0000`` in a payload is stored as U+FFFD, and so
    is a lone surrogate escape (``\\ud800``), in a payload encoded again from its data.

Needs ``psycopg`` 3: ``pip install 'amq-bridge[postgres]'``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Sequence

from bridge.errors import ConfigError, SinkError
from bridge.event import Event
from bridge.properties import encode as encode_properties
from bridge.sinks.base import Sink

if TYPE_CHECKING:
    import psycopg

#: Seconds to wait for a connection, unless the url sets ``connect_timeout``.
CONNECT_TIMEOUT = 10
#: Keepalives, so a server that vanished without closing the socket is noticed within ~30 s.
CONNECT_OPTIONS = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
                   "tcp_user_timeout": 30000, "application_name": "amq-bridge",
                   "client_encoding": "UTF8"}  # the COPY rows are UTF-8

SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    message_id   text PRIMARY KEY,
    received_at  timestamptz NOT NULL,
    broker_time  bigint,
    destination  text NOT NULL,
    transport    text NOT NULL,
    redelivered  boolean NOT NULL,
    md5          text,
    label        text,
    payload      jsonb NOT NULL,
    properties   jsonb
)
"""
COLUMNS = ("message_id, received_at, broker_time, destination, transport, redelivered, md5, label, payload, "
           "properties")
#: Where a batch holding an event already stored goes first (one per connection, emptied at commit).
BATCH_TABLE = "amq_bridge_batch"
#: A table made before the ``properties`` column existed gets it.
MIGRATE = "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS properties jsonb"


def safe_url(url: str) -> str:
    """``url`` without its password, fit for messages."""
    url = re.sub(r"^([a-z][a-z0-9+.-]*://[^:/@]*):[^@/]*@", r"\1:***@", url)
    return re.sub(r"\bpassword\s*=\s*('[^']*'|\S+)", "password=***", url)


def _password(url: str) -> str:
    match = re.match(r"[a-z][a-z0-9+.-]*://[^:/@]*:([^@/]*)@", url) or re.search(r"\bpassword\s*=\s*'?([^'\s]+)", url)
    return match.group(1) if match else ""


#: What COPY's text format escapes in a value (and NUL, which PostgreSQL text cannot hold).
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": "\ufffd"})
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r\x00]").search
#: A surrogate escape (\ud800-\udfff) in a body: a lone one is refused by jsonb.
_SURROGATE = re.compile(rb"\\u[dD][89abcdefABCDEF]").search
_NUL_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


def _copy_text(value: str) -> bytes:
    """A text value as a field of COPY's text format."""
    if _NEEDS_ESCAPE(value):
        value = value.translate(_COPY_ESCAPES)
    return value.encode()


def _column(value: object) -> bytes:
    """An optional string column (md5, label); PostgreSQL text cannot hold NUL, so such a value is left out."""
    if type(value) is not str or "\x00" in value:
        return b"\\N"
    return _copy_text(value)


def payload(event: Event) -> bytes:
    """The jsonb column: the body as published (it decoded to a JSON object), as a COPY field.

    jsonb cannot hold U+0000 or a lone surrogate: a ``\\u0000`` becomes U+FFFD, and a body with a
    lone surrogate escape is encoded again from its data with U+FFFD in its place.
    """
    body = event.body
    if _SURROGATE(body):
        text = json.dumps(event.data, separators=(",", ":"), ensure_ascii=False)
        body = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode()
    if b"\\u0000" in body:
        body = _NUL_ESCAPE.sub(b"\\1\xef\xbf\xbd", body)
    if b"\\" in body or b"\t" in body or b"\n" in body or b"\r" in body:
        body = body.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n").replace(b"\r", b"\\r")
    return body


def _properties(event: Event) -> bytes:
    """The ``properties`` column of an event that has properties (jsonb refuses U+0000 too)."""
    text = encode_properties(event.properties)
    if "\\u0000" in text:
        text = re.sub(r"(?<!\\)((?:\\\\)*)\\u0000", "\\1\ufffd", text)
    return _copy_text(text)


def copy_lines(events: Sequence[Event], received_at: datetime, properties: bool = True) -> bytes:
    """The rows of these events in COPY's text format (the columns of :data:`COLUMNS`)."""
    stamp = received_at.isoformat().encode()
    out = []
    append = out.append
    parts: dict[tuple[str, str], bytes] = {}
    for event in events:
        data = event.data or {}
        key = (event.destination, event.transport)
        middle = parts.get(key)
        if middle is None:
            middle = parts[key] = b"%b\t%b" % (_copy_text(key[0]), _copy_text(key[1]))
        broker_time = event.timestamp
        append(b"%b\t%b\t%b\t%b\t%b\t%b\t%b\t%b\t%b\n" % (
            _copy_text(event.message_id), stamp, b"\\N" if broker_time is None else b"%d" % broker_time, middle,
            b"t" if event.redelivered else b"f", _column(data.get("md5")), _column(data.get("label")),
            payload(event), _properties(event) if properties and event.properties else b"\\N"))
    return b"".join(out)


class PostgresSink(Sink):
    """Batched, idempotent inserts into ``sink.table`` of the database at ``sink.url``."""

    name = "postgres"
    #: A flush is a COPY and a commit, mostly waiting on the server: the runner may run it on a
    #: thread of its own while it receives the next batch.
    background_flush = True

    conn: "psycopg.Connection[Any] | None" = None

    def open(self) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise ConfigError("the postgres sink needs psycopg: pip install 'amq-bridge[postgres]'",
                              key="sink.type") from exc
        self.psycopg = psycopg
        self.where = safe_url(self.config.url)
        table = self.config.table
        self.copy_direct = f"COPY {table} ({COLUMNS}) FROM STDIN"
        self.copy_batch = f"COPY {BATCH_TABLE} ({COLUMNS}) FROM STDIN"
        self.insert_batch = (f"INSERT INTO {table} ({COLUMNS}) SELECT {COLUMNS} FROM {BATCH_TABLE} "
                             "ON CONFLICT (message_id) DO NOTHING")
        self.pending: list[bytes] = []
        self._connect()

    def _error(self, doing: str, exc: BaseException) -> SinkError:
        """A SinkError for ``exc`` whose message cannot hold the url's password."""
        text = " ".join(str(exc).split()) or type(exc).__name__
        for secret in (self.config.url, _password(self.config.url)):
            if secret:
                text = text.replace(secret, "***")
        return SinkError(f"postgres sink cannot {doing} {self.where}: {text}")

    def _connect(self) -> None:
        psycopg = self.psycopg
        try:
            params = psycopg.conninfo.conninfo_to_dict(self.config.url)
        except psycopg.Error as exc:
            raise self._error("parse the url", exc) from None
        params.setdefault("connect_timeout", CONNECT_TIMEOUT)
        for key, value in CONNECT_OPTIONS.items():
            params.setdefault(key, value)
        try:
            conn = psycopg.connect(autocommit=True, **params)
        except psycopg.Error as exc:
            raise self._error("connect to", exc) from None  # the cause may quote the url
        try:
            with conn.transaction():
                # several workers may start at once: one creates the table, the others wait
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"amq-bridge:{self.config.table}",))
                conn.execute(SCHEMA.format(table=self.config.table))
                conn.execute(MIGRATE.format(table=self.config.table))
                if self.config.md5_index:
                    conn.execute(f"CREATE INDEX IF NOT EXISTS {self.config.table}_md5 ON {self.config.table} (md5)")
        except psycopg.Error as exc:
            conn.close()
            raise self._error("create the table in", exc) from exc
        self.conn = conn

    def _drop(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except self.psycopg.Error:
                pass

    def write(self, events: Sequence[Event]) -> None:
        if events:
            self.pending.append(copy_lines(events, datetime.now(timezone.utc), self.config.include_properties))

    def flush(self) -> None:
        chunks, self.pending = self.pending, []  # a failed batch is written again by the retry
        if not chunks:
            return
        if self.conn is None:
            self._connect()
        conn = self.conn
        assert conn is not None
        try:
            with conn.cursor() as cursor:
                try:  # one COPY, one transaction (the connection autocommits)
                    with cursor.copy(self.copy_direct) as copy:
                        for chunk in chunks:
                            copy.write(chunk)
                except self.psycopg.errors.UniqueViolation:
                    # an event of the batch is stored already (a redelivery): nothing of the COPY
                    # was, so the batch goes again, in one transaction, keeping what is there
                    with conn.transaction():
                        # the sink's columns only: a column the table's owner added (an identity,
                        # NOT NULL with a default) would otherwise be NOT NULL here with no default
                        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {BATCH_TABLE} ON COMMIT DELETE ROWS "
                                       f"AS SELECT {COLUMNS} FROM {self.config.table} WITH NO DATA")
                        with cursor.copy(self.copy_batch) as copy:
                            for chunk in chunks:
                                copy.write(chunk)
                        cursor.execute(self.insert_batch)
        except self.psycopg.Error as exc:
            # the connection may be broken (a restart) or in doubt: start afresh next attempt
            self._drop()
            raise self._error("write to", exc) from exc

    def close(self) -> None:
        if self.conn is None:
            return
        try:
            self.flush()
        finally:
            self._drop()
