"""``amq-bridge check`` without a broker: the jar version reader (META-INF/MANIFEST.MF, no JVM) and
the effective configuration it prints."""

from __future__ import annotations

import zipfile
from pathlib import Path

import yaml

from bridge.check import effective_config, jar_version
from bridge.config import parse_config

PASSWORD = "0123456789abcdef0123456789abcdef"


def test_jar_version_from_manifest(tmp_path: Path) -> None:
    def jar(name: str, manifest: str | None) -> Path:
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as archive:
            if manifest is not None:
                archive.writestr("META-INF/MANIFEST.MF", manifest)
        return path

    impl = jar("a.jar", "Manifest-Version: 1.0\r\nBundle-Version: 9.9\r\nImplementation-Version: 5.17.2\r\n\r\n")
    bundle = jar("b.jar", "Manifest-Version: 1.0\nBundle-Version: 1.11.0\n")
    wrapped = jar("c.jar", "Manifest-Version: 1.0\nImplementation-Version: 1.2.3-SNAPSHOT-build\n -42\n\n"
                           "Name: x/\nImplementation-Version: 0.0\n")
    assert jar_version(impl) == "5.17.2"
    assert jar_version(bundle) == "1.11.0"
    assert jar_version(wrapped) == "1.2.3-SNAPSHOT-build-42"
    assert jar_version(jar("d.jar", "Manifest-Version: 1.0\n")) is None
    assert jar_version(jar("e.jar", None)) is None
    (tmp_path / "f.jar").write_text("not a zip")
    assert jar_version(tmp_path / "f.jar") is None
    assert jar_version(tmp_path / "absent.jar") is None


def test_effective_config_is_what_a_user_would_write(tmp_path: Path) -> None:
    doc = {
        "transport": "stomp",
        "credentials": {"username": "12345", "password": PASSWORD},
        "subscription": {"namespace": "acme", "destination_id": "7", "connection_id": "acme-1"},
        "openwire": {"tls": {"ca_file": "ca.pem"}},  # a transport that is not tried
        "stomp": {"hosts": ["b1:61613", "[::1]:61614"]},
        "sink": {"type": "jsonl", "path": "events.jsonl", "fsync": True},
    }
    config = parse_config(doc, base_dir=tmp_path, env={})
    text = effective_config(config)
    shown = yaml.safe_load(text)
    assert PASSWORD not in text and shown["credentials"]["password"] == "***"
    assert "openwire" not in shown and "tls" not in shown["stomp"]
    assert shown["stomp"]["hosts"] == ["b1:61613", "[::1]:61614"]
    assert shown["subscription"] == {"connection_id": "acme-1", "namespace": "acme", "destination_id": "7"}
    assert set(shown["sink"]) == {"type", "path", "fsync", "keep", "include_properties", "max_attempts"}  # the jsonl sink's keys
    assert not {"source", "inline_secrets", "transport_order"} & set(shown)
    shown["credentials"]["password"] = PASSWORD
    written_back = parse_config(shown, env={})  # the same configuration, but for the section left out
    assert written_back.model_copy(update={"openwire": config.openwire}) == config


def test_effective_config_shows_tls_of_a_transport_tried() -> None:
    config = parse_config({"profile": "generic", "fallback": ["stomp"],
                           "subscription": {"destination": "queue:q", "connection_id": "c"},
                           "openwire": {"urls": ["ssl://b:61617"]},
                           "stomp": {"tls": {"insecure": True, "key_password": "pem-pass"}},
                           "sink": {"type": "postgres", "url": "postgresql://u:pg-pass@h/db"}}, env={})
    shown = yaml.safe_load(effective_config(config))
    assert shown["openwire"]["tls"]["enabled"] and shown["stomp"]["tls"]["insecure"]
    assert shown["stomp"]["tls"]["key_password"] == "***"
    assert shown["sink"] == {"type": "postgres", "url": "postgresql://u:***@h/db", "table": "events",
                             "md5_index": True, "include_properties": True, "max_attempts": 0}
    assert shown["subscription"] == {"connection_id": "c", "destination": "queue:q"}


def test_effective_config_leaves_out_what_is_not_set() -> None:
    config = parse_config({"profile": "generic", "subscription": {"destination": "queue:q", "connection_id": "c"},
                           "openwire": {"urls": ["ssl://b:61617"]}}, env={})
    shown = yaml.safe_load(effective_config(config))
    assert "credentials" not in shown
    assert shown["openwire"]["tls"] == {"enabled": True, "verify_hostname": True, "insecure": False}
    assert "dead_letter" not in shown and "port" not in shown["metrics"]
