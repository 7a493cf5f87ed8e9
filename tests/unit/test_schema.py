"""The JSON Schema of config.yaml: shipped as printed, and agreeing with what the bridge accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bridge.cli import main
from bridge.config import parse_config
from bridge.errors import ConfigError
from tests.unit.test_config import _DELETE, ENV, base, with_change

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "config.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def schema_accepts(doc: Any) -> bool:
    return VALIDATOR.is_valid(doc)


def bridge_accepts(doc: Any) -> bool:
    try:
        parse_config(doc, env=ENV)
    except ConfigError:
        return False
    return True


def test_shipped_schema_is_what_the_command_prints(capsys) -> None:
    assert main(["schema"]) == 0
    printed = capsys.readouterr().out
    assert printed == (ROOT / "config.schema.json").read_text(), "regenerate: amq-bridge schema > config.schema.json"
    jsonschema.Draft202012Validator.check_schema(json.loads(printed))


@pytest.mark.parametrize("name,schema_path", [("config.yaml", "./config.schema.json"),
                                              ("examples/config.production.yaml", "../config.schema.json")])
def test_shipped_configs_validate_and_point_editors_at_the_schema(name: str, schema_path: str) -> None:
    text = (ROOT / name).read_text()
    assert text.splitlines()[0] == f"# yaml-language-server: $schema={schema_path}"
    assert (ROOT / name).parent.joinpath(schema_path).resolve() == ROOT / "config.schema.json"
    errors = [f"{e.json_path}: {e.message}" for e in VALIDATOR.iter_errors(yaml.safe_load(text))]
    assert errors == []


def test_every_key_has_a_description() -> None:
    missing = [f"{model}.{key}" for model, spec in [("BridgeConfig", SCHEMA), *SCHEMA["$defs"].items()]
               for key, prop in spec.get("properties", {}).items() if not prop.get("description")]
    assert missing == []


def _sink(**keys: Any) -> tuple[str, dict[str, Any]]:
    return "sink", keys


# (change to the good document, accepted?) - the schema and the bridge must give the same answer
AGREE = [
    ("transport", "openwire", True),
    ("fallback", "openwire", True),  # one item for a list
    ("subscription.destination_id", 42, True),  # a YAML number taken as text
    ("stomp", None, True),  # a section with every key commented out
    ("openwire", {"urls": "ssl://broker.example.com:61617", "prefetch": None}, True),
    (*_sink(type="jsonl", path="events.jsonl", fsync=True, rotate_bytes=1000, keep=3), True),
    (*_sink(type="sqlite", path="e.db", table="t1"), True),
    (*_sink(type="postgres", url="postgresql://u@127.0.0.1/db"), True),
    ("stomp", {"tls": {"ca_file": "system", "cert_file": "c.pem", "key_file": "k.pem"}}, True),
    ("openwire", {"tls": {"trust_store": "t.p12", "key_store": "k.jks", "key_store_type": "jks"}}, True),
    ("metrics", {"port": 9187}, True),
    ("credentials.username", 12345, True),
    ("credentials.username", "123", False),  # the AtData profile's checks
    ("credentials.password", "secret", False),
    ("credentials", None, False),
    ("subscription.namespace", "acme-corp", False),
    ("stomp.tls", {"enabled": True, "insecure": True}, True),
    ("stomp.tls", {"enabled": False, "cert_file": "c.pem", "key_file": "k.pem"}, True),
    ("stomp.tls", {"enabled": True}, False),  # no ca_file to verify the broker with
    ("stomp.tls", {"insecure": False}, False),
    ("stomp.tls", {"cert_file": "c.pem", "key_file": "k.pem"}, False),
    (*_sink(type="handler", handler="pkg.mod:fn", max_attempts=0), True),
    (*_sink(type="handler", handler="pkg.mod:fn"), False),  # gives up after 5: needs dead_letter
    (*_sink(type="sqlite", path="e.db", max_attempts=3), False),
    ("colour", "blue", False),  # an unknown key
    ("openwire.prefetch", "many", False),  # a wrong type
    ("openwire.prefetch", 0, False),
    ("batch_size", True, False),
    ("transport", "amqp", False),
    ("fallback", ["stomp", "kafka"], False),
    ("stomp.hosts", ["localhost"], False),
    ("stomp.hosts", ["h:70000"], False),
    ("openwire.urls", ["127.0.0.1:61616"], False),
    ("openwire.urls", [], False),
    ("metrics.port", 65536, False),
    ("subscription.connection_id", "bad id!", False),
    ("subscription.connection_id", _DELETE, False),
    ("subscription.destination", "queue:q", False),  # together with namespace + destination_id
    (*_sink(type="kafka"), False),
    (*_sink(type="jsonl"), False),  # no path
    (*_sink(type="jsonl", path="e.jsonl", table="t"), False),  # another sink's key
    (*_sink(type="stdout", url="postgresql://u@h/db"), False),
    (*_sink(type="handler", handler="not a function"), False),
    (*_sink(type="sqlite", path="e.db", table="a b"), False),
    (*_sink(fsync="yes"), False),
    ("openwire", {"tls": {"cert_file": "c.pem"}}, False),  # without key_file
    ("openwire", {"tls": {"ca_file": "ca.pem", "trust_store": "t.jks"}}, False),
    ("openwire", {"tls": {"trust_store": "t", "trust_store_type": "PEM"}}, False),
    ("openwire", {"connection_factory": "not a class"}, False),
]


@pytest.mark.parametrize("path,value,accepted", AGREE, ids=[f"{c[0]}={c[1]!r}"[:50] for c in AGREE])
def test_schema_and_bridge_agree(path: str, value: Any, accepted: bool) -> None:
    doc = with_change(path, value)
    assert bridge_accepts(doc) == accepted
    assert schema_accepts(doc) == accepted


def test_a_sink_that_gives_up_with_a_dead_letter_file_validates() -> None:
    for sink in ({"type": "sqlite", "path": "e.db", "max_attempts": 3}, {"type": "handler", "handler": "m:f"}):
        doc = {**base(), "sink": sink, "dead_letter": "dead.jsonl"}
        assert schema_accepts(doc) and bridge_accepts(doc)


def test_the_good_document_and_a_generic_one_validate() -> None:
    generic = {"profile": "generic", "subscription": {"destination": "topic:prices", "connection_id": "p1"}}
    for doc in (base(), generic):
        assert schema_accepts(doc) and bridge_accepts(doc)
    other_broker = {"profile": "generic", "credentials": {"username": "app", "password": "pw"},
                    "subscription": {"namespace": "acme-corp", "destination_id": "1", "connection_id": "p1"}}
    assert schema_accepts(other_broker) and bridge_accepts(other_broker)
    neither = {"profile": "generic", "subscription": {"connection_id": "p1"}}
    assert not schema_accepts(neither) and not bridge_accepts(neither)
