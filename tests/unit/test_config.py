"""Configuration: typed, frozen, and every invalid value named by file and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from bridge.cli import main
from bridge.config import Destination, load_config, parse_config
from bridge.errors import ConfigError

GOOD_PASSWORD = "0123456789abcdef0123456789abcdef"
ENV = {"USER_VAR": "12345", "PASS_VAR": GOOD_PASSWORD}


def base() -> dict[str, Any]:
    return {
        "transport": "stomp",
        "credentials": {"username": "${USER_VAR}", "password": "${PASS_VAR}"},
        "subscription": {"namespace": "acme", "destination_id": "7", "connection_id": "acme-1"},
    }


def with_change(path: str, value: Any) -> dict[str, Any]:
    doc = base()
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    if value is _DELETE:
        node.pop(last, None)
    else:
        node[last] = value
    return doc


_DELETE = object()

# (change to the good document, key named in the error, words in the error)
INVALID = [
    ("colour", "blue", "colour", "unknown key"),
    ("subscription.queue_name", "x", "subscription.queue_name", "unknown key"),
    ("transport", "amqp", "transport", "not one of openwire, stomp"),
    ("transport", 5, "transport", "not one of"),
    ("fallback", ["stomp", "kafka"], "fallback[1]", "not one of"),
    ("fallback", {"a": 1}, "fallback", "must be a list"),
    ("connect_timeout", "soon", "connect_timeout", "must be a number"),
    ("connect_timeout", -1, "connect_timeout", "at least"),
    ("batch_size", 1.5, "batch_size", "whole number"),
    ("stomp.hosts", ["localhost"], "stomp.hosts[0]", "not HOST:PORT"),
    ("openwire.urls", ["127.0.0.1:61616"], "openwire.urls[0]", "not a broker URL"),
    ("openwire", "tcp://x:1", "openwire", "must be a mapping"),
    ("sink.type", "kafka", "sink.type", "not one of"),
    ("sink.type", "jsonl", "sink.path", "required for the jsonl sink"),
    ("sink.fsync", "yes", "sink.fsync", "not one of never, batch"),
    ("subscription.connection_id", _DELETE, "subscription.connection_id", "is required"),
    ("subscription.connection_id", "bad id!", "subscription.connection_id", "may hold only"),
    ("subscription.destination_id", _DELETE, "subscription.destination_id", "is required"),
    ("subscription.namespace", _DELETE, "subscription.namespace", "is required"),
    ("subscription.namespace", "acme-corp", "subscription.namespace", "must be alphanumeric"),
    ("subscription.destination_id", "1.2", "subscription.destination_id", "may hold only"),
    ("credentials.username", "123", "credentials.username", "4-5 digits"),
    ("credentials.username", "123456", "credentials.username", "4-5 digits"),
    ("credentials.username", "abcd", "credentials.username", "4-5 digits"),
    ("credentials.password", "secret", "credentials.password", "32 hexadecimal"),
    ("credentials.password", "g" * 32, "credentials.password", "32 hexadecimal"),
    ("credentials.password", "${NOT_SET_ANYWHERE}", "credentials.password", "environment variable NOT_SET_ANYWHERE is not set"),
    ("credentials.username", "${bad-name}", "credentials.username", "not a valid environment variable"),
    ("sink", {"type": "jsonl", "path": "e.jsonl", "table": "t"}, "sink.table", "unknown key for the jsonl sink"),
    ("sink", {"type": "postgres"}, "sink.url", "is required for the postgres sink"),
    ("stomp.tls", {"trust_store": "t.jks"}, "stomp.tls.trust_store", "Java key stores are for openwire"),
    ("openwire.tls", {"cert_file": "c.pem"}, "openwire.tls.key_file", "cert_file and key_file go together"),
    ("metrics.port", 65536, "metrics.port", "at most 65535"),
    ("metrics.max_event_age", 0, "metrics.max_event_age", "more than 0"),
    ("metrics.max_event_age", "soon", "metrics.max_event_age", "must be a number"),
]


@pytest.mark.parametrize("path,value,key,words", INVALID, ids=[f"{c[0]}={c[1]!r}"[:40] for c in INVALID])
def test_invalid_value_names_file_and_key(tmp_path: Path, path: str, value: Any, key: str, words: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(with_change(path, value)))
    with pytest.raises(ConfigError) as info:
        load_config(config, env=ENV)
    assert info.value.key == key
    assert words in str(info.value)
    assert str(info.value).startswith(f"{config}: {key}: ")
    assert GOOD_PASSWORD not in str(info.value)


@pytest.mark.parametrize("path,value,key,words", INVALID[:6] + INVALID[20:26])
def test_cli_prints_one_line_and_exits_2(tmp_path: Path, capsys, monkeypatch, path: str, value: Any,
                                         key: str, words: str) -> None:
    for name, env_value in ENV.items():
        monkeypatch.setenv(name, env_value)
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(with_change(path, value)))
    assert main(["run", "-c", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"amq-bridge: config error: {config}: {key}: {err[0].split(f'{key}: ', 1)[1]}"]
    assert words in err[0]


def test_cli_config_error_has_no_traceback_and_exit_status_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(with_change("credentials.username", "12")))
    result = subprocess.run([sys.executable, "-m", "bridge", "run", "-c", str(config)],
                            capture_output=True, text=True, timeout=60, env={"USER_VAR": "1", "PASS_VAR": "x", "PATH": ""})
    assert result.returncode == 2
    assert result.stderr.strip() == f"amq-bridge: config error: {config}: credentials.username: must be 4-5 digits " \
                                    "(AtData profile; set profile: generic for other brokers)"


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("transport: [openwire\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: not valid YAML at line"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"missing.yaml: cannot read file"):
        load_config(tmp_path / "missing.yaml")


def test_good_config_is_typed_and_frozen(tmp_path: Path) -> None:
    doc = base()
    doc["sink"] = {"type": "jsonl", "path": "out/events.jsonl"}
    doc["fallback"] = ["openwire"]
    doc["stomp"] = {"hosts": ["a:1", "[::1]:2"]}
    config_path = tmp_path / "good.yaml"
    config_path.write_text(yaml.safe_dump(doc))
    config = load_config(config_path, env=ENV)
    assert config.subscription.destination == Destination("queue", "7.RTO.acme")
    assert config.subscription.connection_id == "acme-1"
    assert config.subscription.feed_topic == Destination("topic", "RTO.acme")
    assert config.credentials.username == "12345" and config.credentials.password == GOOD_PASSWORD
    assert GOOD_PASSWORD not in repr(config)
    assert config.sink.path == tmp_path / "out" / "events.jsonl"
    assert config.stomp.hosts == (("a", 1), ("::1", 2))
    assert config.transport_order == ("stomp", "openwire")
    with pytest.raises(ValidationError, match="frozen"):
        config.transport = "openwire"  # type: ignore[misc]


def test_generic_profile_allows_plain_destination_and_other_credentials() -> None:
    doc = {
        "profile": "generic",
        "credentials": {"username": "app", "password": "not-hex"},
        "subscription": {"destination": "topic:prices.eu", "connection_id": "p1"},
    }
    config = parse_config(doc, env={})
    assert config.subscription.destination == Destination("topic", "prices.eu")
    assert config.credentials.username == "app"


def test_destination_and_namespace_together_are_refused() -> None:
    doc = base()
    doc["subscription"]["destination"] = "queue:x"
    with pytest.raises(ConfigError, match="either destination or namespace"):
        parse_config(doc, env=ENV)


def test_integer_ids_in_yaml_are_taken_as_text() -> None:
    doc = base()
    doc["subscription"]["destination_id"] = 42
    assert parse_config(doc, env=ENV).subscription.destination.name == "42.RTO.acme"


def test_secret_from_a_file_reference(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(GOOD_PASSWORD + "\n")
    doc = base()
    doc["credentials"]["password"] = "${file:password}"
    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump(doc))
    assert load_config(config_path, env=ENV).credentials.password == GOOD_PASSWORD


def test_unreadable_secret_file_names_key_and_path(tmp_path: Path) -> None:
    doc = base()
    doc["credentials"]["password"] = "${file:/nonexistent/secret}"
    with pytest.raises(ConfigError, match=r"credentials.password: cannot read /nonexistent/secret \(No such file"):
        parse_config(doc, env=ENV)


@pytest.mark.parametrize("mode,warned", [(0o644, True), (0o600, False)])
def test_inline_password_in_a_readable_file_is_warned_about(tmp_path: Path, caplog, mode: int, warned: bool) -> None:
    doc = base()
    doc["credentials"]["password"] = GOOD_PASSWORD
    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump(doc))
    config_path.chmod(mode)
    load_config(config_path, env=ENV)
    lines = [r.getMessage() for r in caplog.records if "inline" in r.getMessage()]
    assert bool(lines) == warned
    assert all("credentials.password" in line and GOOD_PASSWORD not in line for line in lines)


def test_referenced_password_is_not_warned_about(tmp_path: Path, caplog) -> None:
    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump(base()))
    config_path.chmod(0o644)
    load_config(config_path, env=ENV)
    assert not [r for r in caplog.records if "inline" in r.getMessage()]


ROOT = Path(__file__).resolve().parents[2]
SHIPPED_ENV = {"AMQ_USERNAME": "12345", "AMQ_PASSWORD": "0123456789abcdef0123456789abcdef",
               "AMQ_NAMESPACE": "acme", "AMQ_CONNECTION_ID": "acme-host1"}


def test_shipped_config_yaml_loads_with_sqlite_default() -> None:
    config = load_config(ROOT / "config.yaml", env=SHIPPED_ENV)
    assert config.sink.type == "sqlite" and config.sink.path == ROOT / "events.db"
    assert config.subscription.destination.name == "1.RTO.acme"
    assert config.transport_order == ("openwire", "stomp")


def test_production_example_loads_with_tls_and_env_secrets() -> None:
    config = load_config(ROOT / "examples" / "config.production.yaml", env=SHIPPED_ENV)
    assert config.openwire.tls.enabled and config.openwire.tls.verify_hostname
    assert all(url.startswith("ssl://") for url in config.openwire.urls)
    assert config.stomp.tls.enabled and not config.stomp.tls.insecure
    assert config.sink.type == "postgres" and config.workers == 2
    assert config.inline_secrets == ()  # every secret comes from the environment
    assert config.secrets == (SHIPPED_ENV["AMQ_PASSWORD"], config.sink.url)


def test_stomp_tls_without_a_ca_is_refused_unless_insecure() -> None:
    base = {"profile": "generic", "subscription": {"destination": "queue:q", "connection_id": "c"}}
    with pytest.raises(ConfigError, match=r"stomp\.tls\.ca_file: is required .*insecure: true"):
        parse_config({**base, "stomp": {"tls": {"enabled": True}}}, env={})
    config = parse_config({**base, "stomp": {"tls": {"enabled": True, "insecure": True}}}, env={})
    assert config.stomp.tls.enabled and config.stomp.tls.insecure


def test_openwire_ssl_url_enables_tls_and_factory_name_is_checked() -> None:
    base = {"profile": "generic", "subscription": {"destination": "queue:q", "connection_id": "c"}}
    config = parse_config({**base, "openwire": {"urls": ["ssl://broker.example.com:61617"]}}, env={})
    assert config.openwire.tls.enabled and config.openwire.tls.verify_hostname
    with pytest.raises(ConfigError, match="openwire.connection_factory: must be a fully qualified Java class"):
        parse_config({**base, "openwire": {"connection_factory": "not a class"}}, env={})


def test_postgres_password_in_url_is_a_secret() -> None:
    base = {"profile": "generic", "subscription": {"destination": "queue:q", "connection_id": "c"}}
    config = parse_config({**base, "sink": {"type": "postgres", "url": "postgresql://u:pw-123@127.0.0.1/db"}}, env={})
    assert "pw-123" in config.secrets and "pw-123" not in repr(config)


def test_max_event_age_is_optional_seconds() -> None:
    assert parse_config(base(), env=ENV).metrics.max_event_age is None
    assert parse_config(with_change("metrics.max_event_age", 2.5), env=ENV).metrics.max_event_age == 2.5
