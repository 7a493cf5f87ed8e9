"""The ``sink`` section: one model per sink type, chosen by ``sink.type``, each with its own keys.

A batch is acknowledged to the broker only after the sink committed or flushed it. Every sink
has ``max_attempts`` (writes of one batch before its undelivered events are dead-lettered).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BeforeValidator, Discriminator, Field, PlainSerializer, Tag

from bridge.config.fields import (ConfigPath, Flag, Matching, Number, SchemaChange, SecretField, Section, Whole, choice,
                                  whole)

SINK_TYPES = ("stdout", "jsonl", "sqlite", "postgres", "handler")
FSYNC_POLICIES = ("never", "batch")

_TABLE = "[A-Za-z_][A-Za-z0-9_]*"
_HANDLER = "[A-Za-z0-9_.]+:[A-Za-z0-9_.]+"


def url_password(url: str) -> str:
    """The password part of ``scheme://user:password@host/...`` or of a ``password=...`` keyword."""
    match = re.match(r"[a-z][a-z0-9+.-]*://[^:/@]*:([^@/]*)@", url) or re.search(r"\bpassword\s*=\s*'?([^'\s]+)", url)
    return match.group(1) if match else ""


def _mask_url(url: str) -> str:
    password = url_password(url)
    return url.replace(password, "***") if password else url


def _fsync(value: Any) -> Any:
    return ("batch" if value else "never") if isinstance(value, bool) else value


Fsync = Annotated[choice(*FSYNC_POLICIES), BeforeValidator(_fsync),
                  SchemaChange(lambda s: {"anyOf": [*s["anyOf"], {"type": "boolean"}]})]
Table = Annotated[str, Matching(_TABLE, lambda v: "must be a plain SQL name (letters, digits, _)")]
#: The connection string: a secret when it holds a password (put that in PGPASSWORD instead).
PostgresUrl = Annotated[str, SecretField(inline_if=lambda url: bool(url_password(url)),
                                          parts=lambda url: [url_password(url)]),
                        PlainSerializer(_mask_url, return_type=str), Field(repr=False)]

_FSYNC = ("batch: fsync (sqlite: synchronous=FULL) before each acknowledgement, survives power loss; never: "
          "handed to the operating system, survives a crash of the process (true / false read as batch / never).")
_MD5_INDEX = ("An index on md5, so a lookup by md5 is fast; it is most of the cost of a write (md5s are random keys: "
              "nearly every event dirties an index page of its own). false: none is made (one already there is kept).")
_PROPERTIES = ("Write each event's message properties and standard JMS headers (a \"properties\" object in JSON "
               "lines, a properties column in the stores) when it has any.")
_ATTEMPTS = ("Writes of one batch before its undelivered events go to dead_letter (with the error as the reason) "
             "and are acknowledged; 0 retries forever (the feed waits for the sink).")


class StdoutSinkConfig(Section):
    """JSON lines on standard output."""

    type: Literal["stdout"] = Field("stdout", description="The sink: stdout, jsonl, sqlite, postgres or handler.")
    fsync: Fsync = Field("never", description=_FSYNC)
    include_properties: Flag = Field(True, description=_PROPERTIES)
    max_attempts: Whole = Field(0, ge=0, description=_ATTEMPTS)


class JsonlSinkConfig(Section):
    """JSON lines appended to a file, with optional rotation at batch boundaries."""

    type: Literal["jsonl"] = Field(description="The sink: JSON lines appended to path.")
    path: ConfigPath = Field(description="The file events are appended to.")
    fsync: Fsync = Field("never", description=_FSYNC)
    rotate_bytes: Optional[whole(ge=1)] = Field(None, description="Rotate (rename to <path>.<UTC time>) when the file "
                                          "would grow past this many bytes.")
    rotate_seconds: Optional[Annotated[Number, Field(ge=1)]] = Field(None, description="Rotate when the file is older than this many "
                                             "seconds.")
    keep: Whole = Field(0, ge=0, description="Rotated files kept, the oldest removed first; 0 keeps all.")
    include_properties: Flag = Field(True, description=_PROPERTIES)
    max_attempts: Whole = Field(0, ge=0, description=_ATTEMPTS)


class SqliteSinkConfig(Section):
    """One SQLite table keyed by message id (a redelivered event is stored once), WAL mode, one
    transaction per batch."""

    type: Literal["sqlite"] = Field(description="The sink: an SQLite database file.")
    path: ConfigPath = Field(description="The database file.")
    table: Table = Field("events", description="The table, created if missing.")
    md5_index: Flag = Field(True, description=_MD5_INDEX)
    fsync: Fsync = Field("never", description=_FSYNC)
    include_properties: Flag = Field(True, description=_PROPERTIES)
    max_attempts: Whole = Field(0, ge=0, description=_ATTEMPTS)


class PostgresSinkConfig(Section):
    """The same table in PostgreSQL (COPY; a redelivery through ON CONFLICT DO NOTHING); several bridges
    on several machines can feed one database."""

    type: Literal["postgres"] = Field(description="The sink: a PostgreSQL table.")
    url: PostgresUrl = Field(description="postgresql://USER@HOST:PORT/DATABASE; put the password in ${ENV_VAR}, "
                                         "PGPASSWORD or ~/.pgpass, not here.")
    table: Table = Field("events", description="The table, created if missing.")
    md5_index: Flag = Field(True, description=_MD5_INDEX)
    include_properties: Flag = Field(True, description=_PROPERTIES)
    max_attempts: Whole = Field(0, ge=0, description=_ATTEMPTS)


class HandlerSinkConfig(Section):
    """Your own Python function receives each batch (or each event)."""

    type: Literal["handler"] = Field(description="The sink: a Python function of yours.")
    handler: Annotated[str, Matching(_HANDLER, lambda v: "must be package.module:function")] = Field(
        description="The function, as package.module:function.")
    mode: choice("event", "batch") = Field("batch", description="event: the function is called with each event; "
                                                                "batch: with each list of events.")
    max_attempts: Whole = Field(5, ge=0, description=_ATTEMPTS)


def _sink_type(value: Any) -> Any:
    if isinstance(value, dict):
        chosen = value.get("type")
        return "stdout" if chosen is None else chosen if isinstance(chosen, str) else repr(chosen)
    return getattr(value, "type", None)


SinkConfig = Annotated[Union[
    Annotated[StdoutSinkConfig, Tag("stdout")], Annotated[JsonlSinkConfig, Tag("jsonl")],
    Annotated[SqliteSinkConfig, Tag("sqlite")], Annotated[PostgresSinkConfig, Tag("postgres")],
    Annotated[HandlerSinkConfig, Tag("handler")],
], Discriminator(_sink_type)]

__all__ = ["SINK_TYPES", "SinkConfig", "StdoutSinkConfig", "JsonlSinkConfig", "SqliteSinkConfig",
           "PostgresSinkConfig", "HandlerSinkConfig", "url_password"]
