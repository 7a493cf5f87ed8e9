"""The asyncio API (bridge.aopen / bridge.arun) over a real broker, in a child process of its own."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, TRANSPORTS, Broker, child_env, publish, read_jsonl, write_config

pytestmark = pytest.mark.broker
CHILD = ROOT / "tests/integration/async_child.py"
N = 2000


def run_child(tmp_path: Path, scenario: str, count: int, configs: list[Path], publish_count: int) -> dict[str, Any]:
    """Start the scenario, publish ``publish_count`` events once every stream subscribed, return its JSON."""
    err = tmp_path / f"{scenario}.stderr"
    with open(err, "wb") as stderr:
        child = subprocess.Popen([sys.executable, str(CHILD), scenario, str(count), *map(str, configs)],
                                 stdout=subprocess.PIPE, stderr=stderr, env=child_env(), cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while err.read_text().count("subscribed to") < len(configs) and time.monotonic() < deadline:
            assert child.poll() is None, err.read_text()
            time.sleep(0.05)
        publish(configs[0], publish_count)
        out, _ = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err.read_text()[-3000:]
    return json.loads(out.decode().strip().splitlines()[-1])


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_aopen_exact_events_loop_free_and_idle_receive_times_out(broker: Broker, tmp_path: Path, namespace: str,
                                                                 transport: str) -> None:
    config = write_config(tmp_path / "a.yaml", broker=broker, transport=transport, namespace=namespace)
    result = run_child(tmp_path, "flow", N, [config], N)
    assert result["seen"] == list(range(N))
    # a 10 ms ticker on the same loop: never more than 50 ms late while the events flow (not
    # counting time the machine had no CPU for the process); the same measure sees 80 ms of blocking
    figures = {k: v for k, v in result.items() if k != "seen"}
    assert result["ticks"] >= 5 and result["max_late"] < 0.05, str(figures)
    assert result["control_late"] >= 0.06, str(figures)
    assert result["idle_none"] and 0.45 <= result["idle_seconds"] < 1.0, result["idle_seconds"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cancelled_consumer_closes_and_unacked_events_come_again(broker: Broker, tmp_path: Path, namespace: str,
                                                                 transport: str) -> None:
    config = write_config(tmp_path / "c.yaml", broker=broker, transport=transport, namespace=namespace,
                          batch_size=10)
    result = run_child(tmp_path, "cancel", 100, [config], 100)
    assert result["cancelled"] and result["close_seconds"] < 10, result
    assert result["first"] == list(range(21))
    # the batches acked in full (at most 10 events each) were acknowledged to the broker; the one
    # holding event 20 was not, so it comes again, and everything after it
    acked = result["broker_acked"]
    assert 10 <= acked <= 20, result
    assert sorted(result["second"]) == list(range(acked, 100)), result["second"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_two_streams_in_one_loop(broker: Broker, tmp_path: Path, namespace: str, transport: str) -> None:
    configs = [write_config(tmp_path / f"{d}.yaml", broker=broker, transport=transport, namespace=namespace,
                            destination_id=d, connection_id=f"async-{d}") for d in ("1", "2")]
    result = run_child(tmp_path, "two", 300, configs, 300)
    assert result["seen"] == [list(range(300)), list(range(300))]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_arun_async_handler_retried_then_dead_lettered(broker: Broker, tmp_path: Path, namespace: str,
                                                       transport: str) -> None:
    config = write_config(tmp_path / "r.yaml", broker=broker, transport=transport, namespace=namespace,
                          sink={"type": "handler", "handler": "service.store:events", "mode": "event",
                                "max_attempts": 3},
                          reconnect={"initial_delay": 0.05, "max_delay": 0.1})
    result = run_child(tmp_path, "arun", 50, [config], 50)
    assert result["attempts_7"] == 3 and result["dead_lettered"] == 1, result
    assert sorted(result["delivered"]) == [i for i in range(50) if i != 7]
    assert result["retried"] == []  # per event: only the failing one is called again
    dead = read_jsonl(tmp_path / "r.dead.jsonl")
    assert len(dead) == 1 and "ValueError: poison event 7" in dead[0]["reason"], dead
    assert "failed 3 times" in dead[0]["reason"]
