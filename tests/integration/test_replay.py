"""``amq-bridge replay``: dead-lettered events go back to the sink once it works, each exactly once.

Over a real broker (both transports): a handler that fails while a flag file exists, with
``sink.max_attempts: 2``, sets a whole stream aside; once it works, ``replay`` delivers every
set-aside event to it once, and a second ``replay`` delivers none. Without a broker: a replay
into jsonl killed with -9 midway and run again ends with each event in the sink once, and
records that still cannot be decoded (bad JSON, over ``max_message_bytes``) stay in the file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from bridge.deadletter import dead_letter_record
from bridge.event import make_event
from bridge.publish import sample_event
from tests.conftest import ROOT, TRANSPORTS, Broker, bridge_command, child_env, publish, write_config
from tests.faults.checker import count_lines, read_records, tally

SUMMARY = re.compile(r"(?:replayed|would replay) (\d+) event\(s\) to the sink, (\d+) already in it; "
                     r"(\d+) (?:would )?remain in (\S+)")


def replay(config: Path, *args: str, timeout: float = 60) -> tuple[int, int, int]:
    """Run ``amq-bridge replay``; returns (replayed, already, remaining) from its summary."""
    result = subprocess.run(bridge_command("replay", "-c", str(config), *args), env=child_env(),
                            capture_output=True, timeout=timeout, text=True)
    assert result.returncode == 0, result.stderr
    match = SUMMARY.search(result.stdout)
    assert match, result.stdout + result.stderr
    return int(match[1]), int(match[2]), int(match[3])


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


@pytest.mark.broker
@pytest.mark.timeout(120)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_events_set_aside_by_a_failing_handler_are_replayed_once(
        broker: Broker, spawn, tmp_path: Path, namespace: str, transport: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    delivered, fail = tmp_path / "handler-sink.jsonl", tmp_path / "fail.flag"
    monkeypatch.setenv("AMQ_BRIDGE_TEST_SINK", str(delivered))
    monkeypatch.setenv("AMQ_BRIDGE_TEST_FAIL", str(fail))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    config = write_config(tmp_path / "c.yaml", broker=broker, transport=transport, namespace=namespace,
                          sink={"type": "handler", "handler": "tests.faults.handlers:flaky", "max_attempts": 2},
                          batch_size=50, reconnect={"initial_delay": 0.05, "max_delay": 0.1})
    dead = tmp_path / "c.dead.jsonl"
    fail.touch()
    bridge = spawn(config)
    bridge.wait_for("subscribed to")
    publish(config, 300, extra=("--sequence",))
    wait_until(lambda: count_lines(dead) >= 300, 60, "300 events set aside")
    fail.unlink()
    publish(config, 100, start=300, extra=("--sequence",))
    wait_until(lambda: count_lines(delivered) >= 100, 60, "100 events delivered after the handler healed")
    assert bridge.process.poll() is None
    bridge.process.terminate()
    assert bridge.wait(30) == 0

    assert replay(config, "--dry-run") == (300, 0, 300)
    assert count_lines(dead) == 300
    assert replay(config) == (300, 0, 0)
    result = tally(range(400), [delivered], [dead])
    assert (result.lost, result.duplicated, result.unexpected, result.dead_lettered) == (0, 0, 0, 0), result.summary()
    assert replay(config) == (0, 0, 0)
    assert tally(range(400), [delivered], [dead]).duplicated == 0


@pytest.mark.timeout(120)
def test_a_replay_killed_midway_and_run_again_delivers_each_event_once(tmp_path: Path) -> None:
    count, sink, dead = 3000, tmp_path / "events.jsonl", tmp_path / "dead.jsonl"
    config = write_config(tmp_path / "c.yaml", sink=sink, dead_letter=str(dead), batch_size=10,
                          max_message_bytes=1000)
    good = [make_event(json.dumps(sample_event(i, sequence=True)).encode(), 1000, message_id=f"ID:r-{i}",
                       destination="queue:1.RTO.acme", transport="stomp", problem="sink failed 2 times: boom")
            for i in range(count)]
    kept = [make_event(b'{"seq": oops', 1000, message_id="ID:bad-json", destination="queue:1.RTO.acme"),
            make_event(json.dumps({"pad": "x" * 2000}).encode(), 1000, message_id="ID:too-big",
                       destination="queue:1.RTO.acme")]
    assert all(e.problem for e in kept)
    records = [dead_letter_record(e) for e in good[:1500] + kept + good[1500:]]
    dead.write_text("".join(json.dumps(r) + "\n" for r in records))

    process = subprocess.Popen(bridge_command("replay", "-c", str(config)), env=child_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: count_lines(sink) >= 300 or process.poll() is not None, 60, "the replay writing")
    finally:
        process.kill()
        process.wait(10)
    written = count_lines(sink)
    assert written < count, "the replay finished before it could be killed"

    replayed, already, remaining = replay(config)
    assert replayed + already + written >= count and remaining == 2
    assert replayed == count - written  # what the first run wrote (all of it) was recognised, none again
    result = tally(range(count), [sink])
    assert (result.lost, result.duplicated, result.unexpected) == (0, 0, 0), result.summary()
    left = read_records(dead)[0]
    assert sorted(r["message_id"] for r in left) == ["ID:bad-json", "ID:too-big"]
    assert all(r["reason"] for r in left)
    assert replay(config) == (0, 0, 2)
