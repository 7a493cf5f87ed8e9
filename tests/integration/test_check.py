"""``amq-bridge check``: config, classpath with jar versions, each transport tried, exit status."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import (
    PASSWORD,
    ROOT,
    Broker,
    bridge_command,
    child_env,
    publish,
    write_config,
)

JAVA_NOISE = ("Traceback", "Exception in thread", "\tat org.", "\tat java.")


def run_check(config: Path, cwd: Path, merged: bool = False) -> subprocess.CompletedProcess[str]:
    """``amq-bridge check``; with ``merged``, stderr is written into stdout as it comes."""
    result = subprocess.run(bridge_command("check", "-c", str(config)), env=child_env(), cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merged else subprocess.PIPE,
                            text=True, timeout=90, check=False)
    output = result.stdout + (result.stderr or "")
    assert PASSWORD not in output
    assert not any(noise in output for noise in JAVA_NOISE), output
    return result


def transport_line(stdout: str, name: str) -> str:
    lines = [line for line in stdout.splitlines() if line.strip().startswith(f"{name} (")]
    assert len(lines) == 1, stdout
    return lines[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.broker
def test_working_broker_both_transports_ok(broker: Broker, tmp_path: Path, namespace: str) -> None:
    config = write_config(tmp_path / "c.yaml", broker=broker, transport="openwire", fallback=["stomp"],
                          namespace=namespace, connection_id="checked")
    result = run_check(config, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "password: '***'" in out
    assert not any(word in out for word in ("source", "inline_secrets", "transport_order", "table:"))
    assert "connection_id: checked" in out and "'checked-check'" in out
    assert "activemq-client.jar  present  version 5.17.2" in out
    assert "MISSING" not in out
    queue = f"queue:1.RTO.{namespace}"
    assert f"ok (connected to {broker.openwire_url}, subscribed to {queue} in " in transport_line(out, "openwire")
    assert f"ok (connected to {broker.stomp_host}, subscribed to {queue} in " in transport_line(out, "stomp")
    assert "redelivered, not lost" in out


@pytest.mark.broker
def test_check_takes_no_events(broker: Broker, spawn, tmp_path: Path, namespace: str) -> None:
    config = write_config(tmp_path / "c.yaml", broker=broker, transport="stomp", fallback=["openwire"],
                          namespace=namespace)
    assert run_check(config, tmp_path).returncode == 0  # its subscription creates the queue
    publish(config, 20)
    assert run_check(config, tmp_path).returncode == 0  # both transports subscribe to a full queue
    after = spawn(config, "--max-events", "20", "--idle-timeout", "10")
    assert after.wait(60) == 0, after.stderr
    events = after.events()
    assert len(events) == 20 and not any(e["redelivered"] for e in events)


def test_dead_broker_exit_1_with_reason(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path / "c.yaml", transport="openwire", fallback=["stomp"], connect_timeout=2,
                          openwire={"urls": [f"tcp://127.0.0.1:{port}"], "jars_dir": str(ROOT / "jars")},
                          stomp={"hosts": [f"127.0.0.1:{port}"]})
    result = run_check(config, tmp_path, merged=True)
    assert result.returncode == 1, result.stdout
    # the failover client still retrying in the background logs nothing after the result line
    assert result.stdout.rstrip().splitlines()[-1].startswith("result: FAILED"), result.stdout
    for name in ("openwire", "stomp"):
        line = transport_line(result.stdout, name)
        assert "FAILED: " in line and f"127.0.0.1:{port}" in line, line
    assert "refused" in transport_line(result.stdout, "stomp").lower()
    assert "result: FAILED" in result.stdout


@pytest.mark.broker
def test_missing_jars_listed_and_stomp_ok(broker: Broker, tmp_path: Path, namespace: str) -> None:
    empty = tmp_path / "nojars"
    empty.mkdir()
    shutil.copy(ROOT / "jars" / "manifest.txt", empty / "manifest.txt")
    config = write_config(tmp_path / "c.yaml", broker=broker, transport="openwire", fallback=["stomp"],
                          namespace=namespace, openwire={"jars_dir": str(empty)})
    result = run_check(config, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert f"{empty / 'activemq-client.jar'}  MISSING (Debian package libactivemq-java)" in out
    assert "hawtbuf.jar  MISSING (Debian package libhawtbuf-java)" in out
    assert "activemq-broker.jar" not in out  # the broker group is not the client's classpath
    assert "FAILED: jar activemq-client.jar is missing" in transport_line(out, "openwire")
    assert "ok (connected to" in transport_line(out, "stomp")
    assert "stomp works" in out


@pytest.mark.broker
def test_bad_credentials_exit_1_naming_authentication(broker: Broker, tmp_path: Path, namespace: str) -> None:
    wrong = "f" * 32
    config = write_config(tmp_path / "c.yaml", broker=broker, transport="openwire", fallback=["stomp"],
                          namespace=namespace, credentials={"username": "12345", "password": wrong})
    config.chmod(0o600)
    result = run_check(config, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert wrong not in result.stdout + result.stderr
    for name in ("openwire", "stomp"):
        line = transport_line(result.stdout, name)
        assert "FAILED: authentication failed: " in line and "refused user '12345'" in line, line
