"""``workers: N`` over a real broker: N processes share one destination id, restart, stop together.

Counted: events in the union of the workers' files (each must hold every published event),
events seen twice (none without a kill; at most two batches after a SIGKILL), worker processes
still alive after the supervisor is gone (none).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from bridge.publish import sample_event
from bridge.workers import numbered_path
from tests.conftest import Broker, bridge_command, child_env, publish, read_jsonl, write_config

pytestmark = pytest.mark.broker
STARTED = re.compile(r"worker (\d+) (started|restarted) \(pid (\d+), connection id '([^']+)'\)")


def md5s(count: int) -> list[str]:
    return sorted(sample_event(i)["md5"] for i in range(count))


def wait_count(bridge, text: str, count: int, timeout: float = 90) -> None:
    """Wait until ``text`` appears ``count`` times on the bridge's stderr."""
    deadline = time.monotonic() + timeout
    while bridge.stderr.count(text) < count:
        if bridge.process.poll() is not None:
            raise AssertionError(f"bridge exited ({bridge.process.returncode}):\n{bridge.stderr}")
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {count} {text!r} within {timeout}s:\n{bridge.stderr}")
        time.sleep(0.05)


def starts(stderr: str) -> list[tuple[int, str, int, str]]:
    """(index, started|restarted, pid, connection id) of every worker start the supervisor logged."""
    return [(int(m[1]), m[2], int(m[3]), m[4]) for m in STARTED.finditer(stderr)]


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie or a missing process counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def wait_gone(pids: list[int], timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def parts(sink: Path, workers: int = 2) -> list[list[str]]:
    return [[e["data"]["md5"] for e in read_jsonl(numbered_path(sink, i))] for i in range(1, workers + 1)]


@pytest.mark.parametrize("transport", ["stomp", "openwire"])
def test_two_workers_split_the_stream_without_duplicates(
    broker: Broker, spawn, tmp_path: Path, namespace: str, transport: str
) -> None:
    count, sink = 4000, tmp_path / "events.jsonl"
    config = write_config(tmp_path / "w.yaml", broker=broker, transport=transport, namespace=namespace,
                          connection_id="split", sink=sink, workers=2,
                          openwire={"prefetch": 100}, stomp={"prefetch": 100})
    bridge = spawn(config, "--idle-timeout", "6")
    wait_count(bridge, "subscribed to", 2)
    publish(config, count)
    assert bridge.wait(120) == 0, bridge.stderr
    first, second = parts(sink)
    assert first and second, f"one worker got nothing: {len(first)}, {len(second)}"
    union = first + second
    assert len(union) == len(set(union)), "an event reached both workers"
    assert sorted(union) == md5s(count)
    assert {(i, cid) for i, _, _, cid in starts(bridge.stderr)} == {(1, "split-1"), (2, "split-2")}
    assert "all 2 workers finished" in bridge.stderr
    assert not sink.exists(), "workers write numbered files only"


def test_a_killed_worker_is_restarted_with_its_id_and_nothing_is_lost(
    broker: Broker, spawn, tmp_path: Path, namespace: str
) -> None:
    count, batch, sink = 4000, 10, tmp_path / "events.jsonl"
    config = write_config(tmp_path / "k.yaml", broker=broker, namespace=namespace, connection_id="kill",
                          sink=sink, workers=2, batch_size=batch, stomp={"prefetch": 50},
                          reconnect={"initial_delay": 0.2, "max_delay": 1})
    bridge = spawn(config, "--idle-timeout", "6")
    wait_count(bridge, "subscribed to", 2)
    publisher = subprocess.Popen(
        bridge_command("publish", "-c", str(config), "--transport", "stomp", "--count", str(count), "--rate", "1000"),
        env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        victim = next(pid for i, _, pid, _ in starts(bridge.stderr) if i == 1)
        deadline = time.monotonic() + 60
        while len(read_jsonl(numbered_path(sink, 1))) < 300 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert publisher.poll() is None, "the stream ended before the kill; nothing was tested"
        os.kill(victim, signal.SIGKILL)
        wait_count(bridge, "worker 1 restarted", 1, timeout=60)
        assert publisher.wait(120) == 0, publisher.stderr.read().decode() if publisher.stderr else ""
    finally:
        if publisher.poll() is None:
            publisher.kill()
        publisher.wait(10)
        if publisher.stderr:
            publisher.stderr.close()
    assert bridge.wait(120) == 0, bridge.stderr
    seen = [md5 for part in parts(sink) for md5 in part]
    assert sorted(set(seen)) == md5s(count), "an event was lost"
    twice = sum(n - 1 for n in Counter(seen).values())
    assert twice <= 2 * batch, f"{twice} duplicates: more than the batches in flight at the kill"
    assert "worker 1 killed by SIGKILL" in bridge.stderr
    restarted = [(pid, cid) for i, how, pid, cid in starts(bridge.stderr) if i == 1 and how == "restarted"]
    assert len(restarted) == 1 and restarted[0][0] != victim and restarted[0][1] == "kill-1"
    assert bridge.stderr.count("as connection id 'kill-1'") == 2, bridge.stderr


def test_sigterm_stops_all_workers_and_leaves_no_process(
    broker: Broker, spawn, tmp_path: Path, namespace: str
) -> None:
    config = write_config(tmp_path / "t.yaml", broker=broker, namespace=namespace, connection_id="term",
                          workers=2, shutdown_timeout=10)
    bridge = spawn(config, "--idle-timeout", "60")
    wait_count(bridge, "subscribed to", 2)
    pids = [pid for _, _, pid, _ in starts(bridge.stderr)]
    assert len(pids) == 2 and all(alive(p) for p in pids)
    bridge.process.send_signal(signal.SIGTERM)
    assert bridge.wait(30) == 0, bridge.stderr
    assert wait_gone(pids) == [], "a worker outlived its supervisor"
    assert bridge.stderr.count("SIGTERM received") == 3, bridge.stderr  # the supervisor and each worker
    assert bridge.stderr.count("finished (status 0)") == 2


def test_a_killed_supervisor_takes_its_workers_along(broker: Broker, spawn, tmp_path: Path, namespace: str) -> None:
    config = write_config(tmp_path / "o.yaml", broker=broker, namespace=namespace, connection_id="orphan",
                          workers=2, shutdown_timeout=10)
    bridge = spawn(config, "--idle-timeout", "60")
    wait_count(bridge, "subscribed to", 2)
    pids = [pid for _, _, pid, _ in starts(bridge.stderr)]
    bridge.process.kill()
    bridge.process.wait(10)
    assert wait_gone(pids) == [], "a worker lives on as an orphan"


def test_refused_credentials_stop_the_supervisor(broker: Broker, spawn, tmp_path: Path, namespace: str) -> None:
    config = write_config(tmp_path / "a.yaml", broker=broker, namespace=namespace, connection_id="auth",
                          workers=2, credentials={"username": "12345", "password": "f" * 32})
    bridge = spawn(config, "--idle-timeout", "30")
    assert bridge.wait(60) == 1, bridge.stderr
    assert "exited with status 3" in bridge.stderr and "stopping all workers" in bridge.stderr
    assert "restarted" not in bridge.stderr
    assert wait_gone([pid for _, _, pid, _ in starts(bridge.stderr)]) == []
