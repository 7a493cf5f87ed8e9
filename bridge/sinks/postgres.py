"""The ``postgres`` sink: events in one PostgreSQL table keyed by message id.

Features:
    The table (``sink.table``, default ``events``) is created when missing, with the columns of
    the ``sqlite`` sink: ``message_id`` (primary key), ``received_at`` (timestamptz),
    ``broker_time`` (ms since the epoch), ``destination``, ``transport``, ``redelivered``
    (boolean), ``md5``, ``label``, ``payload`` (jsonb) and ``properties`` (jsonb: the message's
    properties, NULL when it has none or with ``sink.include_properties: false``; a table made
    before this column existed gets it added when the sink connects). Each batch is one transaction of
    ``INSERT ... ON CONFLICT (message_id) DO NOTHING``, so a redelivered event is stored once;
    the runner acknowledges the batch after the commit. A lost connection (a database restart)
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
    the character U+0000; a ``\\u0000`` in a payload is stored as U+FFFD.

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
                   "tcp_user_timeout": 30000, "application_name": "amq-bridge"}

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
#: A table made before the ``properties`` column existed gets it.
MIGRATE = "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS properties jsonb"
INSERT = ("INSERT INTO {table} (message_id, received_at, broker_time, destination, transport, redelivered, "
          "md5, label, payload, properties) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb) "
          "ON CONFLICT (message_id) DO NOTHING")


def safe_url(url: str) -> str:
    """``url`` without its password, fit for messages."""
    url = re.sub(r"^([a-z][a-z0-9+.-]*://[^:/@]*):[^@/]*@", r"\1:***@", url)
    return re.sub(r"\bpassword\s*=\s*('[^']*'|\S+)", "password=***", url)


def _password(url: str) -> str:
    match = re.match(r"[a-z][a-z0-9+.-]*://[^:/@]*:([^@/]*)@", url) or re.search(r"\bpassword\s*=\s*'?([^'\s]+)", url)
    return match.group(1) if match else ""


def _text(value: object) -> str | None:
    """A string column value; PostgreSQL text cannot hold NUL, so such a value is left out."""
    return value if isinstance(value, str) and "\x00" not in value else None


def _properties(event: Event) -> str:
    """The ``properties`` column of an event that has properties (jsonb refuses U+0000 too)."""
    text = encode_properties(event.properties)
    return re.sub(r"(?<!\\)((?:\\\\)*)\\u0000", "\\1\ufffd", text) if "\\u0000" in text else text


def event_row(event: Event, received_at: datetime, properties: bool = True) -> tuple[object, ...]:
    """The row stored for an event; ``md5`` and ``label`` are the event's own fields, when present;
    ``properties`` JSON, or NULL when the message has none (or ``properties`` is false)."""
    data = event.data or {}
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    if "\\u0000" in payload:  # jsonb refuses it; json.dumps writes a NUL only this way
        payload = re.sub(r"(?<!\\)((?:\\\\)*)\\u0000", "\\1\ufffd", payload)
    return (event.message_id, received_at, event.timestamp, event.destination, event.transport,
            event.redelivered, _text(data.get("md5")), _text(data.get("label")), payload,
            _properties(event) if properties and event.properties else None)


class PostgresSink(Sink):
    """Batched, idempotent inserts into ``sink.table`` of the database at ``sink.url``."""

    name = "postgres"

    conn: "psycopg.Connection[Any] | None" = None

    def open(self) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise ConfigError("the postgres sink needs psycopg: pip install 'amq-bridge[postgres]'",
                              key="sink.type") from exc
        self.psycopg = psycopg
        self.where = safe_url(self.config.url)
        self.insert = INSERT.format(table=self.config.table)
        self.pending: list[tuple[object, ...]] = []
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
        now, properties = datetime.now(timezone.utc), self.config.include_properties
        self.pending.extend(event_row(event, now, properties) for event in events)

    def flush(self) -> None:
        rows, self.pending = self.pending, []  # a failed batch is written again by the retry
        if not rows:
            return
        if self.conn is None:
            self._connect()
        assert self.conn is not None
        try:
            with self.conn.transaction():
                with self.conn.cursor() as cursor:
                    cursor.executemany(self.insert, rows)
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
