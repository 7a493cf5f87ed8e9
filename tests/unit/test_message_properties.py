"""Message properties (bridge/properties.py): ActiveMQ's STOMP headers typed back, JSON values, and
how the sinks write them."""

from __future__ import annotations

import json
import math
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bridge import properties
from bridge.config import SqliteSinkConfig
from bridge.event import Event, make_event
from bridge.sinks import create_sink
from bridge.sinks.lines import event_line
from bridge.sinks.postgres import copy_lines
from bridge.sinks.sqlite import event_row as sqlite_row

#: The MESSAGE frame ActiveMQ writes for tests/java PropertyProducer's message 0 (as stomp.py reads it).
FRAME = {"destination": "/topic/t", "message-id": "ID:x-1:1:1:1:1", "subscription": "sub-1", "ack": "ID:a-0",
         "timestamp": "1795000000000", "expires": "0", "priority": "7", "persistent": "true", "type": "order",
         "correlation-id": "corr-0", "kind": "open", "region": "eu", "n": "0", "flag": "true",
         "big": "1099511627776", "ratio": "0.25", "small": "0.1", "tiny": "7", "short": "300", "meta": "{a=1}"}
#: What the OpenWire helper makes of the same message (and what both transports must give).
EXPECTED = {"kind": "open", "region": "eu", "n": 0, "flag": True, "big": 1 << 40, "ratio": 0.25, "small": 0.1,
            "tiny": 7, "short": 300, "meta": "{a=1}", "JMSType": "order", "JMSCorrelationID": "corr-0",
            "JMSPriority": 7, "JMSDeliveryMode": "PERSISTENT", "JMSExpiration": 0}
PLAIN = {"destination": "/queue/q", "message-id": "ID:x-1:1:1:1:2", "subscription": "sub-1", "ack": "ID:a-1",
         "timestamp": "1795000000000", "expires": "0", "priority": "4", "content-length": "12",
         "redelivered": "true"}


def test_stomp_headers_give_the_java_producers_properties() -> None:
    assert properties.stomp_has_properties(FRAME)
    assert properties.from_stomp(FRAME) == EXPECTED


def test_a_message_with_only_defaults_has_none() -> None:
    assert not properties.stomp_has_properties(PLAIN)
    assert not properties.stomp_has_properties({**PLAIN, "persistent": "true"})  # delivery mode alone: a default


@pytest.mark.parametrize("change,expected", [
    ({"priority": "9"}, {"JMSPriority": 9, "JMSDeliveryMode": "NON_PERSISTENT", "JMSExpiration": 0}),
    ({"expires": "1795000060000"}, {"JMSPriority": 4, "JMSDeliveryMode": "NON_PERSISTENT",
                                    "JMSExpiration": 1795000060000}),
    ({"type": "t", "persistent": "true"}, {"JMSType": "t", "JMSPriority": 4, "JMSDeliveryMode": "PERSISTENT",
                                           "JMSExpiration": 0}),
    ({"content-type": "application/json"}, {"content-type": "application/json", "JMSPriority": 4,
                                            "JMSDeliveryMode": "NON_PERSISTENT", "JMSExpiration": 0}),
])
def test_anything_beyond_the_defaults_brings_all_standard_headers(change: dict[str, str], expected: dict) -> None:
    headers = {**PLAIN, **change}
    assert properties.stomp_has_properties(headers)
    assert properties.from_stomp(headers) == expected


@pytest.mark.parametrize("text,value", [
    ("true", True), ("false", False), ("0", 0), ("-12", -12), ("9223372036854775807", 2**63 - 1),
    ("1.5", 1.5), ("1.0E10", 1e10), ("-2.5E-5", -2.5e-5),
    ("True", "True"), ("007", "007"), ("1e5", "1e5"), ("1.", "1."), ("NaN", "NaN"), ("Infinity", "Infinity"),
    ("", ""), ("{a=1}", "{a=1}"), (" 1", " 1"),
])
def test_stomp_values_are_typed_as_java_printed_them(text: str, value: object) -> None:
    got = properties.stomp_value(text)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("value,expected", [
    (True, True), (7, 7), (0.25, 0.25), ("x", "x"), (None, None),
    (math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity"), (b"\x00\xff", "AP8="), (object, str(object)),
])
def test_json_values(value: object, expected: object) -> None:
    assert properties.json_value(value) == expected


def test_encode_falls_back_for_what_orjson_refuses() -> None:
    assert json.loads(properties.encode({"a": 1, "big": 2**70, "s": "é"})) == {"a": 1, "big": 2**70, "s": "é"}
    assert properties.encode({"s": "é"}) == '{"s":"é"}'


def _event(props: dict | None, body: bytes = b'{"md5":"x"}') -> Event:
    event = make_event(body, 1000, message_id="m1", destination="topic:t", transport="stomp")
    if props is not None:
        event.properties = props
    return event


@pytest.mark.parametrize("body", [b'{"md5":"x"}', b'{"md5":\n"x"}'])  # the fast line and the re-encoded one
def test_jsonl_line_has_properties_only_when_there_are_some(body: bytes) -> None:
    line = json.loads(event_line(_event(EXPECTED, body)))
    assert line["properties"] == EXPECTED and line["data"] == {"md5": "x"}
    assert list(line) == ["message_id", "destination", "timestamp", "redelivered", "transport", "properties", "data"]
    assert "properties" not in json.loads(event_line(_event(None, body)))
    assert "properties" not in json.loads(event_line(_event(EXPECTED, body), properties=False))


def test_store_rows_have_a_properties_column() -> None:
    assert json.loads(sqlite_row(_event(EXPECTED), 0.0)[-1]) == EXPECTED
    assert sqlite_row(_event(None), 0.0)[-1] is None
    assert sqlite_row(_event(EXPECTED), 0.0, properties=False)[-1] is None
    last_field = copy_lines([_event({"a": "x\x00y"})], datetime.now(timezone.utc)).rstrip(b"\n").split(b"\t")[-1]
    assert json.loads(last_field) == {"a": "x\ufffdy"}  # jsonb refuses NUL


def test_sqlite_adds_the_column_to_a_table_made_before_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE events (message_id TEXT PRIMARY KEY, received_at REAL NOT NULL, broker_time INTEGER, "
               "destination TEXT NOT NULL, transport TEXT NOT NULL, redelivered INTEGER NOT NULL, md5 TEXT, "
               "label TEXT, payload TEXT NOT NULL)")
    db.execute("INSERT INTO events VALUES ('old', 0, NULL, 'queue:q', 'stomp', 0, NULL, NULL, '{}')")
    db.commit()
    db.close()
    for include in (True, False):
        with create_sink(SqliteSinkConfig(type="sqlite", path=path, include_properties=include)) as sink:
            sink.write([_event(EXPECTED) if include else dataclass_copy(_event(EXPECTED), "m2")])
            sink.flush()
    rows = dict(sqlite3.connect(path).execute("SELECT message_id, properties FROM events"))
    assert rows == {"old": None, "m1": properties.encode(EXPECTED), "m2": None}


def dataclass_copy(event: Event, message_id: str) -> Event:
    import dataclasses

    return dataclasses.replace(event, message_id=message_id)
