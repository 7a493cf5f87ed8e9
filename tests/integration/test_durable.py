"""Durable topic subscriptions over both transports: what is published while a bridge is down
arrives when it is back, each connection id has its own copy, and ``amq-bridge unsubscribe``
removes one (nothing is kept for it afterwards)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import TRANSPORTS, Broker, bridge_command, child_env, publish, read_jsonl, write_config

pytestmark = pytest.mark.broker
N = 50


def topic_config(path: Path, broker: Broker, transport: str, topic: str, connection_id: str) -> Path:
    write_config(path, broker=broker, transport=transport, connection_id=connection_id)
    doc = yaml.safe_load(path.read_text())
    doc["subscription"] = {"destination": f"topic:{topic}", "connection_id": connection_id}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def seqs(sink: Path) -> list[int]:
    return sorted(e["data"]["seq"] for e in read_jsonl(sink))


def unsubscribe(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(bridge_command("unsubscribe", "-c", str(config)), env=child_env(), capture_output=True,
                          text=True, timeout=60)


def wait_lines(sink: Path, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(read_jsonl(sink)) < count:
        assert time.monotonic() < deadline, f"{sink.name}: {len(read_jsonl(sink))} of {count} events"
        time.sleep(0.05)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_durable_topic_keeps_what_is_published_while_the_bridge_is_down(
    broker: Broker, spawn, tmp_path: Path, namespace: str, transport: str
) -> None:
    topic = f"events.{namespace}"
    a = topic_config(tmp_path / "a.yaml", broker, transport, topic, f"dur-a-{namespace}")
    b = topic_config(tmp_path / "b.yaml", broker, transport, topic, f"dur-b-{namespace}")
    sink_a, sink_b = (Path(yaml.safe_load(c.read_text())["sink"]["path"]) for c in (a, b))

    def send(start: int) -> None:
        publish(a, N, start=start, transport=transport,
                extra=("--destination", f"topic:{topic}", "--persistent", "--sequence"))

    # running: both subscriptions get everything, and a running one cannot be removed
    first = [spawn(config, "--idle-timeout", "60") for config in (a, b)]
    for bridge in first:
        bridge.wait_for(f"subscribed to topic:{topic} (durable subscription 'dur-")
    send(0)
    wait_lines(sink_a, N)
    wait_lines(sink_b, N)
    busy = unsubscribe(a)
    assert busy.returncode == 1 and "is in use" in busy.stderr, busy.stderr
    for bridge in first:
        bridge.process.terminate()
        assert bridge.wait(30) == 0, bridge.stderr

    # down: the broker keeps what is published for each subscription, exactly once
    send(N)
    for config in (a, b):
        assert spawn(config, "--idle-timeout", "2").wait() == 0
    assert seqs(sink_a) == seqs(sink_b) == list(range(2 * N))

    # unsubscribed: nothing is kept for it any more; the other subscription still gets everything
    removed = unsubscribe(a)
    assert removed.returncode == 0, removed.stderr
    assert f"removed the durable subscription 'dur-a-{namespace}'" in removed.stdout
    again = unsubscribe(a)
    assert again.returncode == 1, again.stderr
    assert again.stderr.strip().splitlines()[-1].startswith(
        f"amq-bridge: error: no durable subscription 'dur-a-{namespace}' of connection id"), again.stderr
    send(2 * N)
    for config in (a, b):
        assert spawn(config, "--idle-timeout", "2").wait() == 0
    assert seqs(sink_a) == list(range(2 * N))
    assert seqs(sink_b) == list(range(3 * N))
    for config in (a, b):
        assert unsubscribe(config).returncode == 0


def test_unsubscribe_without_a_durable_subscription_is_a_config_error(broker: Broker, tmp_path: Path,
                                                                      namespace: str) -> None:
    config = write_config(tmp_path / "q.yaml", broker=broker, namespace=namespace)
    result = unsubscribe(config)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"amq-bridge: config error: {config}: subscription.destination: "
                                     f"queue:1.RTO.{namespace} is a queue: there is no durable subscription to remove")
