"""No password in any output: the bridge at DEBUG through connect, reconnect and failure paths.

A known password (the test broker's, and a wrong one) is followed through every place it could
leak: the bridge's whole stderr at DEBUG (stomp.py and the Java client log there too) while it
connects, loses its connection (a proxy drops it), reconnects and delivers; ``check`` at DEBUG;
the refusal of a wrong password; a broker that cannot be reached; and the command line (process
title) of the bridge and of each worker process.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from bridge.publish import sample_event
from tests.conftest import PASSWORD, TRANSPORTS, Broker, bridge_command, child_env, publish, write_config
from tests.faults.proxy import TcpProxy

pytestmark = pytest.mark.broker
N = 50
WRONG = "0123456789abcdef0123456789abcdef"


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition("/")[2].rpartition(":")
    return host, int(port)


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, f"a password appears in the output:\n{text[-3000:]}"


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def wait_until(condition, timeout: float, what: str, bridge=None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}\n{bridge.stderr if bridge else ''}")
        time.sleep(0.05)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_password_never_appears_at_debug(broker: Broker, spawn, tmp_path: Path, namespace: str,
                                         transport: str) -> None:
    with TcpProxy(host_port(broker.openwire_url)) as openwire, TcpProxy(host_port(broker.stomp_host)) as stomp:
        config = write_config(tmp_path / "c.yaml", broker=broker, transport=transport, namespace=namespace,
                              openwire={"urls": [f"tcp://{openwire.address}"], "heartbeat_ms": 1000},
                              stomp={"hosts": [stomp.address], "heartbeat_ms": 1000},
                              reconnect={"initial_delay": 0.1, "max_delay": 0.5})
        bridge = spawn(config, "--log-level", "DEBUG", "--max-events", str(2 * N), "--idle-timeout", "60")
        bridge.wait_for("subscribed to")
        assert_no_secret(cmdline(bridge.process.pid), PASSWORD)
        publish(config, N, transport=transport)
        wait_until(lambda: len(bridge.events()) >= N, 30, "the first events", bridge)
        connects = bridge.stderr.count(": connected to")
        (openwire if transport == "openwire" else stomp).drop()  # the connection is lost
        wait_until(lambda: bridge.stderr.count(": connected to") > connects, 30, "a reconnect", bridge)
        publish(config, N, start=N, transport=transport)
        assert bridge.wait(90) == 0, bridge.stderr
    output = bridge.stderr
    assert "disconnected" in output and "DEBUG" in output, output[-3000:]
    assert {e["data"]["md5"] for e in bridge.events()} >= {sample_event(i)["md5"] for i in range(2 * N)}
    assert_no_secret(output, PASSWORD)


def run_debug(*args: str, env_password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    env = {**child_env(), "AMQ_PASSWORD": env_password}
    return subprocess.run(bridge_command(*args, "--log-level", "DEBUG"), env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_failure_paths_never_show_the_password(broker: Broker, tmp_path: Path, namespace: str,
                                               transport: str) -> None:
    good = write_config(tmp_path / "good.yaml", broker=broker, transport=transport, namespace=namespace,
                        connect_timeout=3)
    checked = run_debug("check", "-c", str(good))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert_no_secret(checked.stdout + checked.stderr, PASSWORD)

    refused = run_debug("run", "-c", str(good), "--idle-timeout", "5", env_password=WRONG)
    assert refused.returncode == 1 and "refused" in refused.stderr, refused.stderr
    assert_no_secret(refused.stdout + refused.stderr, PASSWORD, WRONG)

    dead = write_config(tmp_path / "dead.yaml", broker=broker, transport=transport, namespace=namespace,
                        connect_timeout=2, openwire={"urls": ["tcp://127.0.0.1:9"]}, stomp={"hosts": ["127.0.0.1:9"]},
                        reconnect={"initial_delay": 0.1, "max_attempts": 2})
    unreachable = run_debug("run", "-c", str(dead), "--idle-timeout", "5")
    assert unreachable.returncode == 1, unreachable.stderr
    assert_no_secret(unreachable.stdout + unreachable.stderr, PASSWORD)


def test_worker_command_lines_hold_no_password(broker: Broker, spawn, tmp_path: Path, namespace: str) -> None:
    config = write_config(tmp_path / "w.yaml", broker=broker, namespace=namespace, workers=2)
    supervisor = spawn(config, "--log-level", "DEBUG", "--idle-timeout", "30")
    supervisor.wait_for("worker 2 started")
    children = Path(f"/proc/{supervisor.process.pid}/task/{supervisor.process.pid}/children").read_text().split()
    assert len(children) == 2, supervisor.stderr
    for pid in [supervisor.process.pid, *map(int, children)]:
        line = cmdline(pid)
        assert "--worker" in line or pid == supervisor.process.pid
        assert_no_secret(line, PASSWORD)
    supervisor.wait_for("subscribed to")
    supervisor.process.terminate()
    assert supervisor.wait(60) == 0, supervisor.stderr
    assert_no_secret(supervisor.stderr, PASSWORD)
