"""A running bridge serves its metrics and health over HTTP."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import Broker, publish, write_config

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
