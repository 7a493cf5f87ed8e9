"""One contract, every transport: what a subscriber must see, checked against a real broker."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pytest

from bridge.publish import sample_event
from tests.conftest import PASSWORD, TRANSPORTS, Broker, publish, read_jsonl, write_config

pytestmark = pytest.mark.broker
N = 300
JAVA_NOISE = ("Traceback", "Exception in thread", "\tat org.", "\tat java.")


def expected(count: int, start: int = 0) -> list[dict[str, object]]:
    return [sample_event(i) for i in range(start, start + count)]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exact_content_in_order(broker: Broker, spawn, tmp_path: Path, namespace: str, transport: str) -> None:
    config = write_config(tmp_path / "c.yaml", broker=broker, transport=transport, namespace=namespace)
    bridge = spawn(config, "--max-events", str(N), "--idle-timeout", "60")
    bridge.wait_for("subscribed to")
    publish(config, N, transport=transport)
    assert bridge.wait() == 0, bridge.stderr
    events = bridge.events()
    assert [e["data"] for e in events] == expected(N)
    assert {e["transport"] for e in events} == {transport}
    assert {e["destination"] for e in events} == {f"queue:1.RTO.{namespace}"}
    assert len({e["message_id"] for e in events}) == N
    assert "stats:" in bridge.stderr


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_mirroring_different_destination_ids_each_get_everything(
    broker: Broker, spawn, tmp_path: Path, namespace: str, transport: str
) -> None:
    bridges = []
    for dest in ("1", "2"):
        config = write_config(tmp_path / f"d{dest}.yaml", broker=broker, transport=transport,
                              namespace=namespace, destination_id=dest, connection_id=f"mirror-{dest}")
        bridges.append(spawn(config, "--max-events", str(N), "--idle-timeout", "60"))
    for bridge in bridges:
        bridge.wait_for("subscribed to")
    publish(bridges[0].config, N)
    for bridge in bridges:
        assert bridge.wait() == 0, bridge.stderr
        assert [e["data"] for e in bridge.events()] == expected(N)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_load_balancing_same_destination_id_splits_without_duplicates(
    broker: Broker, spawn, tmp_path: Path, namespace: str, transport: str
) -> None:
    bridges = []
    for conn in ("a", "b"):
        config = write_config(tmp_path / f"{conn}.yaml", broker=broker, transport=transport, namespace=namespace,
                              connection_id=f"lb-{conn}", openwire={"prefetch": 1}, stomp={"prefetch": 1})
        bridges.append(spawn(config, "--idle-timeout", "3"))
    for bridge in bridges:
        bridge.wait_for("subscribed to")
    publish(bridges[0].config, N)
    for bridge in bridges:
        assert bridge.wait() == 0, bridge.stderr
    parts = [[e["data"]["md5"] for e in bridge.events()] for bridge in bridges]
    union = parts[0] + parts[1]
    assert len(union) == len(set(union)), "an event reached both bridges"
    assert sorted(union) == sorted(e["md5"] for e in expected(N))
    assert all(parts), f"one bridge got nothing: {[len(p) for p in parts]}"


def test_switching_transport_is_one_line(broker: Broker, spawn, tmp_path: Path, namespace: str) -> None:
    sink = tmp_path / "sink.jsonl"
    config = write_config(tmp_path / "switch.yaml", broker=broker, transport="openwire", namespace=namespace, sink=sink)
    contents = {}
    for transport in TRANSPORTS:
        text = config.read_text()
        config.write_text(text.replace("transport: openwire", f"transport: {transport}"))
        changed = [a for a, b in zip(text.splitlines(), config.read_text().splitlines()) if a != b]
        assert len(changed) <= 1
        sink.unlink(missing_ok=True)
        bridge = spawn(config, "--max-events", str(N), "--idle-timeout", "60")
        bridge.wait_for("subscribed to")
        publish(config, N, transport=transport)
        assert bridge.wait() == 0, bridge.stderr
        events = read_jsonl(sink)
        assert {e["transport"] for e in events} == {transport}
        contents[transport] = [e["data"] for e in events]
    assert contents["openwire"] == contents["stomp"] == expected(N)


def test_fallback_to_stomp_when_jars_are_missing(broker: Broker, spawn, tmp_path: Path, namespace: str) -> None:
    empty = tmp_path / "nojars"
    empty.mkdir()
    shutil.copy(Path(__file__).resolve().parents[2] / "jars" / "manifest.txt", empty / "manifest.txt")
    config = write_config(tmp_path / "fb.yaml", broker=broker, transport="openwire", fallback=["stomp"],
                          namespace=namespace, openwire={"jars_dir": str(empty)})
    bridge = spawn(config, "--max-events", str(N), "--idle-timeout", "60")
    bridge.wait_for("subscribed to")
    publish(config, N)
    assert bridge.wait() == 0, bridge.stderr
    assert [e["data"] for e in bridge.events()] == expected(N)
    assert {e["transport"] for e in bridge.events()} == {"stomp"}
    warnings = [line for line in bridge.stderr.splitlines() if "falling back to stomp" in line]
    assert len(warnings) == 1 and "activemq-client.jar is missing" in warnings[0], bridge.stderr


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_second_process_with_same_connection_id_gets_clear_error(
    broker: Broker, spawn, tmp_path: Path, namespace: str, transport: str
) -> None:
    config = write_config(tmp_path / "dup.yaml", broker=broker, transport=transport, namespace=namespace,
                          connection_id="same-id", reconnect={"initial_delay": 0.2, "max_attempts": 3})
    first = spawn(config, "--idle-timeout", "60")
    first.wait_for("subscribed to")
    second = spawn(config, "--idle-timeout", "60")
    assert second.wait(60) == 1
    retries = [line for line in second.stderr.splitlines() if "retrying in" in line]
    assert len(retries) == 1 and "connection id 'same-id' is already connected" in retries[0]
    assert "gave up after 3 attempts: connection id 'same-id' is already connected" in second.stderr
    assert not any(noise in second.stderr for noise in JAVA_NOISE), second.stderr
    assert first.process.poll() is None, "the first bridge must keep running"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_wrong_credentials_are_refused_clearly_without_leaking(
    broker: Broker, spawn, tmp_path: Path, namespace: str, transport: str
) -> None:
    wrong = "f" * 32
    config = write_config(tmp_path / "auth.yaml", broker=broker, transport=transport, namespace=namespace,
                          credentials={"username": "12345", "password": wrong})
    bridge = spawn(config, "--log-level", "DEBUG", "--idle-timeout", "5")
    assert bridge.wait(60) == 1
    assert "refused" in bridge.stderr.lower() or "authentication" in bridge.stderr.lower(), bridge.stderr
    assert wrong not in bridge.stderr and PASSWORD not in bridge.stderr
    assert not any(noise in bridge.stderr for noise in JAVA_NOISE), bridge.stderr


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sigterm_mid_stream_exits_0_and_loses_nothing(
    broker: Broker, spawn, tmp_path: Path, namespace: str, transport: str
) -> None:
    count = 3000
    sink = tmp_path / "sink.jsonl"
    config = write_config(tmp_path / "term.yaml", broker=broker, transport=transport, namespace=namespace,
                          sink=sink, batch_size=10, shutdown_timeout=20)
    first = spawn(config, "--idle-timeout", "60")
    first.wait_for("subscribed to")
    publish(config, count)
    deadline = time.monotonic() + 30
    while len(read_jsonl(sink)) < 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    first.process.send_signal(signal.SIGTERM)
    assert first.wait(20) == 0, first.stderr
    assert "SIGTERM received" in first.stderr
    second = spawn(config, "--idle-timeout", "3")
    assert second.wait(120) == 0, second.stderr
    seen = [e["data"]["md5"] for e in read_jsonl(sink)]
    assert sorted(set(seen)) == sorted(e["md5"] for e in expected(count))
    assert len(seen) - len(set(seen)) <= 10 * 2, "more duplicates than one batch in flight"
