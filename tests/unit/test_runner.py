"""The runner's own logic, over an in-memory transport: ack only after durable, bad input set aside."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import bridge.connection
from bridge.config import parse_config
from bridge.errors import SinkError
from bridge.runner import Runner
from tests.unit.fakes import MemorySink, MemoryTransport

GOOD = [json.dumps({"md5": f"{i:032x}"}).encode() for i in range(10)]


def make_config(tmp_path: Path, **extra):
    doc = {
        "profile": "generic",
        "subscription": {"destination": "queue:q", "connection_id": "c"},
        "dead_letter": str(tmp_path / "dead.jsonl"),
        "batch_size": 4,
        "stats_interval": 0,
        **extra,
    }
    return parse_config(doc, env={})


@pytest.fixture
def wire(monkeypatch):
    """Make open_transport hand out a MemoryTransport with the given bodies."""
    made = {}

    def install(bodies, log=None):
        def fake_create(name, config, hooks=None):
            made["t"] = MemoryTransport(config, hooks, bodies, log)
            return made["t"]
        monkeypatch.setattr(bridge.connection, "create_transport", fake_create)
        return made

    return install


def test_every_ack_follows_the_flush_that_made_it_durable(tmp_path, wire) -> None:
    log: list = []
    made = wire(GOOD, log)
    sink = MemorySink(log=log)
    stats = Runner(make_config(tmp_path), sink=sink, max_events=len(GOOD)).run()
    assert [e.data for e in sink.durable] == [json.loads(b) for b in GOOD]
    assert made["t"].acked == [f"m{i}" for i in range(1, 11)]
    for message_id in made["t"].acked:
        assert log.index(("durable", message_id)) < log.index(("ack", message_id))
    assert (stats.received, stats.delivered, stats.acknowledged) == (10, 10, 10)
    assert made["t"].closed and sink.closed


def test_flush_failure_acknowledges_nothing_and_raises(tmp_path, wire) -> None:
    made = wire(GOOD)
    with pytest.raises(SinkError, match="disk full"):
        Runner(make_config(tmp_path), sink=MemorySink(fail_flush=True), max_events=10).run()
    assert made["t"].acked == []
    assert made["t"].closed


def test_bad_events_go_to_dead_letter_before_their_ack(tmp_path, wire) -> None:
    bodies = [GOOD[0], b"not json", GOOD[1], b"", b"[1]", b"\xff\xfe"]
    made = wire(bodies)
    sink = MemorySink()
    stats = Runner(make_config(tmp_path), sink=sink, max_events=len(bodies)).run()
    dead = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert [d["reason"].split(" (")[0] for d in dead] == [
        "body is not valid JSON", "empty body", "body is JSON list, not an object", "body is not valid UTF-8"]
    assert len(sink.durable) == 2
    assert sorted(made["t"].acked) == sorted(f"m{i}" for i in range(1, 7))
    assert (stats.delivered, stats.dead_lettered) == (2, 4)


def test_without_dead_letter_file_bad_events_stay_unacknowledged(tmp_path, wire) -> None:
    made = wire([GOOD[0], b"oops"])
    config = dataclasses.replace(make_config(tmp_path), dead_letter=None)
    with pytest.raises(SinkError, match="no dead_letter file is configured"):
        Runner(config, sink=MemorySink(), max_events=2).run()
    assert made["t"].acked == []


def test_max_events_never_takes_more_than_asked(tmp_path, wire) -> None:
    made = wire(GOOD)
    stats = Runner(make_config(tmp_path), sink=MemorySink(), max_events=6).run()
    assert stats.handled == 6 and len(made["t"].acked) == 6
    assert len(made["t"].pending) == 4


def test_idle_timeout_ends_an_empty_run(tmp_path, wire) -> None:
    wire([])
    stats = Runner(make_config(tmp_path), sink=MemorySink(), idle_timeout=0.2).run()
    assert stats.received == 0


def test_stop_ends_the_run(tmp_path, wire) -> None:
    wire(GOOD)
    runner = Runner(make_config(tmp_path), sink=MemorySink())
    runner.stop()
    assert runner.run().received == 0
