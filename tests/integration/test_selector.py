"""subscription.selector over both transports: only matching messages are delivered, the others
are never acknowledged, and an invalid selector stops the bridge with one line."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import stomp
import yaml

from tests.conftest import PASSWORD, TRANSPORTS, USERNAME, Broker, bridge_command, child_env, write_config
from tests.javaprog import compile_class, produce_properties

pytestmark = pytest.mark.broker
COUNT = 20  # half of them (even seq) have kind = 'open'
JAVA_NOISE = ("Traceback", "Exception in thread", "\tat org.", "\tat java.")


@pytest.fixture(scope="module")
def java_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_class("PropertyProducer", tmp_path_factory.mktemp("java"))


def selector_config(path: Path, broker: Broker, transport: str, namespace: str, kind: str, selector: str,
                    **overrides: Any) -> Path:
    """A bridge on queue 1.RTO.<namespace>, or (kind topic) durably on topic RTO.<namespace>."""
    write_config(path, broker=broker, transport=transport, namespace=namespace, connection_id=f"sel-{namespace}",
                 **overrides)
    doc = yaml.safe_load(path.read_text())
    if kind == "topic":
        doc["subscription"] = {"destination": f"topic:RTO.{namespace}", "connection_id": f"sel-{namespace}"}
    doc["subscription"]["selector"] = selector
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def drain(broker: Broker, queue: str, idle: float = 1.5) -> list[dict[str, str]]:
    """Take every message left on ``queue`` with a plain stomp.py client; their headers."""
    got: list[dict[str, str]] = []

    class Collect(stomp.ConnectionListener):
        def on_message(self, frame: Any) -> None:
            got.append(frame.headers)

    host, port = broker.stomp_host.split(":")
    conn = stomp.Connection12([(host, int(port))], heartbeats=(0, 0))
    conn.set_listener("drain", Collect())
    conn.connect(USERNAME, PASSWORD, wait=True)
    try:
        conn.subscribe(f"/queue/{queue}", "drain", ack="auto")
        seen, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < idle:
            if len(got) != seen:
                seen, quiet_since = len(got), time.monotonic()
            time.sleep(0.05)
    finally:
        conn.disconnect()
    return got


def run(config: Path, *args: str, command: str = "run", timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(bridge_command(command, "-c", str(config), *args), env=child_env(), capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("kind", ["queue", "topic"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_only_matching_messages_arrive_and_the_rest_stay(broker: Broker, spawn, tmp_path: Path, namespace: str,
                                                         java_classes: Path, transport: str, kind: str) -> None:
    config = selector_config(tmp_path / "sel.yaml", broker, transport, namespace, kind, "kind = 'open' AND flag")
    bridge = spawn(config, "--max-events", str(COUNT // 2), "--idle-timeout", "60")
    bridge.wait_for("subscribed to")
    produce_properties(java_classes, broker.openwire_url, f"topic:RTO.{namespace}", 0, COUNT)
    assert bridge.wait() == 0, bridge.stderr
    events = bridge.events()
    assert [e["data"]["seq"] for e in events] == list(range(0, COUNT, 2))
    assert {e["properties"]["kind"] for e in events} == {"open"}
    if kind == "queue":  # the other half was never acknowledged: it is still on the queue
        left = drain(broker, f"1.RTO.{namespace}")
        assert sorted(json.loads(h.get("n", "-1")) for h in left) == list(range(1, COUNT, 2))
        assert {h["kind"] for h in left} == {"closed"}
    else:  # nothing is kept for the subscription: a second run gets nothing more
        again = spawn(config, "--idle-timeout", "2")
        assert again.wait() == 0, again.stderr
        assert len(again.events()) == COUNT // 2
        assert run(config, command="unsubscribe").returncode == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_selector_syntax_error_exits_2_before_connecting(tmp_path: Path, namespace: str, transport: str) -> None:
    config = write_config(tmp_path / "bad.yaml", transport=transport, namespace=namespace,
                          stomp={"hosts": ["127.0.0.1:9"]}, openwire={"urls": ["tcp://127.0.0.1:9"]})
    doc = yaml.safe_load(config.read_text())
    doc["subscription"]["selector"] = "kind = 'open' AND"
    config.write_text(yaml.safe_dump(doc))
    result = run(config)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"amq-bridge: config error: {config}: subscription.selector: not a valid JMS selector: "
        "expected a name, a literal or (, found the end"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_selector_the_broker_refuses_exits_1_with_its_reason(broker: Broker, tmp_path: Path, namespace: str,
                                                                transport: str) -> None:
    config = selector_config(tmp_path / "refused.yaml", broker, transport, namespace, "queue", "kind < 'open'")
    result = run(config, "--idle-timeout", "30")
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("amq-bridge: ")]
    assert len(errors) == 1 and errors == result.stderr.splitlines()[-1:], result.stderr
    assert errors[0].startswith(f"amq-bridge: error: {config}: subscription.selector: "), errors
    assert "kind < 'open'" in errors[0] and "cannot be compared" in errors[0], errors
    assert not any(noise in result.stderr for noise in JAVA_NOISE), result.stderr
    assert "retrying" not in result.stderr and "reconnecting" not in result.stderr, result.stderr
