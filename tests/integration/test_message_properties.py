"""Message properties reach every store, the same whichever transport received them: a Java JMS
producer's typed properties and standard headers, a STOMP producer's custom headers, and nothing
for a message without any; ``sink.include_properties: false`` leaves them out."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import stomp

from tests.conftest import PASSWORD, TRANSPORTS, USERNAME, Broker, publish, read_jsonl, write_config
from tests.integration.test_sinks_store import PG_URL_VAR
from tests.javaprog import compile_class, produce_properties
from tests.pgserver import PgServer

pytestmark = pytest.mark.broker
JAVA, STOMP_SENT = 4, 2  # seq 0-3 from the Java producer, 100-101 over STOMP, 200 without properties


def java_properties(seq: int) -> dict[str, Any]:
    """What tests/java PropertyProducer sets on message ``seq``."""
    return {"kind": "open" if seq % 2 == 0 else "closed", "region": "eu", "n": seq, "flag": seq % 2 == 0,
            "big": 1 << 40, "ratio": 0.25, "small": 0.1, "tiny": 7, "short": 300, "meta": "{a=1}",
            "JMSType": "order", "JMSCorrelationID": f"corr-{seq}", "JMSPriority": 7,
            "JMSDeliveryMode": "PERSISTENT", "JMSExpiration": 0}


def stomp_properties(seq: int) -> dict[str, Any]:
    return {"kind": "open", "region": "eu", "JMSType": "order", "JMSCorrelationID": f"c-{seq}", "JMSPriority": 7,
            "JMSDeliveryMode": "PERSISTENT", "JMSExpiration": 0}


EXPECTED = {**{seq: java_properties(seq) for seq in range(JAVA)},
            **{seq: stomp_properties(seq) for seq in range(100, 100 + STOMP_SENT)}, 200: None}


@pytest.fixture(scope="module")
def java_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_class("PropertyProducer", tmp_path_factory.mktemp("java"))


def send_over_stomp(broker: Broker, topic: str) -> None:
    """A STOMP producer's custom headers (JMS string properties) and the STOMP names of JMS headers."""
    host, port = broker.stomp_host.split(":")
    conn = stomp.Connection12([(host, int(port))])
    conn.connect(USERNAME, PASSWORD, wait=True)
    try:
        for seq in range(100, 100 + STOMP_SENT):
            conn.send(f"/topic/{topic}", json.dumps({"seq": seq}),
                      headers={"kind": "open", "region": "eu", "type": "order", "correlation-id": f"c-{seq}",
                               "priority": "7", "persistent": "true", "receipt": f"r{seq}"})
        time.sleep(0.2)
    finally:
        conn.disconnect(receipt="bye")


def stored(kind: str, where: Any) -> dict[int, Any]:
    """seq -> properties of every event a sink stored."""
    if kind == "jsonl":
        return {line["data"]["seq"]: line.get("properties") for line in read_jsonl(where)}
    if kind == "sqlite":
        with sqlite3.connect(where) as db:
            rows = db.execute("SELECT payload, properties FROM events").fetchall()
        return {json.loads(p)["seq"]: None if props is None else json.loads(props) for p, props in rows}
    import psycopg

    server, table = where
    with psycopg.connect(server.url, connect_timeout=5) as db:
        return {payload["seq"]: props for payload, props in db.execute(f"SELECT payload, properties FROM {table}")}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_properties_in_every_store_the_same_over_both_transports(
    broker: Broker, spawn, tmp_path: Path, namespace: str, java_classes: Path, transport: str,
    pg: PgServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PG_URL_VAR, pg.url)  # the bridges inherit it
    table = f"p_{namespace}_{transport}"
    sinks = {
        "jsonl": ({"type": "jsonl", "path": str(tmp_path / "events.jsonl")}, tmp_path / "events.jsonl"),
        "sqlite": ({"type": "sqlite", "path": str(tmp_path / "events.db")}, tmp_path / "events.db"),
        "postgres": ({"type": "postgres", "url": "${" + PG_URL_VAR + "}", "table": table}, (pg, table)),
        "left out": ({"type": "jsonl", "path": str(tmp_path / "bare.jsonl"), "include_properties": False},
                     tmp_path / "bare.jsonl"),
    }
    total = len(EXPECTED)
    bridges = {}
    for number, (name, (sink, _)) in enumerate(sinks.items(), start=1):
        config = write_config(tmp_path / f"{number}.yaml", broker=broker, transport=transport, namespace=namespace,
                              destination_id=str(number), connection_id=f"props-{number}", sink=sink)
        bridges[name] = spawn(config, "--max-events", str(total), "--idle-timeout", "60")
    for bridge in bridges.values():
        bridge.wait_for("subscribed to")
    produce_properties(java_classes, broker.openwire_url, f"topic:RTO.{namespace}", 0, JAVA)
    send_over_stomp(broker, f"RTO.{namespace}")
    publish(bridges["jsonl"].config, 1, start=200, transport="openwire", extra=("--sequence",))
    for name, bridge in bridges.items():
        assert bridge.wait() == 0, f"{name}: {bridge.stderr}"
    for name in ("jsonl", "sqlite", "postgres"):
        assert stored(name, sinks[name][1]) == EXPECTED, name
    assert stored("jsonl", sinks["left out"][1]) == dict.fromkeys(EXPECTED)
    assert "properties" not in read_jsonl(sinks["jsonl"][1])[-1]  # the message without any: no key at all
