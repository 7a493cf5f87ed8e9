"""A running bridge serves its metrics and health over HTTP."""

from __future__ import annotations

import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, Broker, publish, write_config

pytestmark = pytest.mark.broker


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.parametrize("transport", ["openwire", "stomp"])
def test_metrics_and_readiness_of_a_running_bridge(broker: Broker, spawn, tmp_path: Path, namespace: str,
                                                   transport: str) -> None:
    config = write_config(tmp_path / "m.yaml", broker=broker, transport=transport, namespace=namespace,
                          metrics={"host": "127.0.0.1", "port": 0})
    bridge = spawn(config, "--idle-timeout", "60")
    bridge.wait_for("subscribed to")
    base = re.search(r"metrics and health on (http://127.0.0.1:\d+)/metrics", bridge.stderr)[1]
    assert get(base + "/healthz") == (200, "ok\n")
    assert get(base + "/readyz") == (200, "ready\n")
    publish(config, 50)
    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline:
        text = get(base + "/metrics")[1]
        if f'amq_bridge_acknowledged_total{{transport="{transport}"}} 50.0' in text:
            break
        time.sleep(0.2)
    assert f'amq_bridge_delivered_total{{transport="{transport}"}} 50.0' in text, text
    assert f'amq_bridge_connected{{transport="{transport}"}} 1.0' in text
    assert re.search(rf'amq_bridge_sink_write_seconds_count{{transport="{transport}"}} [1-9]', text)


def _gauge(text: str, transport: str) -> float | None:
    match = re.search(rf'amq_bridge_last_event_age_seconds{{transport="{transport}"}} (\S+)', text)
    return float(match[1]) if match else None


@pytest.mark.parametrize("transport", ["openwire", "stomp"])
def test_event_age_behind_a_slow_sink_turns_readyz_503_then_200(broker: Broker, spawn, tmp_path: Path,
                                                                 namespace: str, transport: str) -> None:
    """The slow handler takes 0.05 s per batch of 5 (100 events/s) while its flag file exists."""
    count, slow, sink = 600, tmp_path / "slow.flag", tmp_path / "handler.jsonl"
    slow.touch()
    config = write_config(tmp_path / "lag.yaml", broker=broker, transport=transport, namespace=namespace,
                          sink={"type": "handler", "handler": "tests.faults.handlers:slow"}, batch_size=5,
                          metrics={"host": "127.0.0.1", "port": 0, "max_event_age": 1.0})
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    bridge = spawn(config, "--idle-timeout", "60", PYTHONPATH=path, AMQ_BRIDGE_TEST_SINK=str(sink),
                   AMQ_BRIDGE_TEST_SLOW=str(slow))
    bridge.wait_for("subscribed to")
    base = re.search(r"metrics and health on (http://127.0.0.1:\d+)/metrics", bridge.stderr)[1]
    assert get(base + "/readyz")[0] == 200
    publish(config, count)
    ages: list[float] = []
    code, deadline = 200, time.monotonic() + 30
    while time.monotonic() < deadline and not (code == 503 and len(ages) > 1 and ages[-1] > max(ages[0] + 0.5, 1.0)):
        time.sleep(0.2)
        code = get(base + "/readyz")[0]
        age = _gauge(get(base + "/metrics")[1], transport)
        if age is not None:
            ages.append(age)
    assert code == 503, (ages, bridge.stderr[-2000:])
    assert len(ages) > 1 and ages[-1] > ages[0] + 0.5 and ages[-1] > 1.0, ages  # the age grows behind the sink
    deadline = time.monotonic() + 10  # the stats line (each second) shows it too
    while not re.search(r" age=[1-9][0-9.]*s ", bridge.stderr) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert re.search(r" age=[1-9][0-9.]*s ", bridge.stderr), bridge.stderr[-2000:]
    slow.unlink()  # the sink is fast again: it catches up
    text = wait_acknowledged(base, transport, count)
    deadline = time.monotonic() + 5  # the last batch was full: waiting, until a receive says otherwise
    while get(base + "/readyz")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert get(base + "/readyz")[0] == 200, text
    publish(config, 10, start=count)  # caught up: new events are delivered young
    text = wait_acknowledged(base, transport, count + 10)
    assert f'amq_bridge_event_age_seconds_count{{transport="{transport}"}} {count + 10}.0' in text, text
    assert _gauge(text, transport) < 1.0, text
    assert get(base + "/readyz")[0] == 200


def wait_acknowledged(base: str, transport: str, count: int, timeout: float = 30) -> str:
    """The metrics text once ``count`` events were acknowledged."""
    text, deadline = "", time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = get(base + "/metrics")[1]
        if f'amq_bridge_acknowledged_total{{transport="{transport}"}} {count}.0' in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"{count} events not acknowledged within {timeout} s:\n{text}")
