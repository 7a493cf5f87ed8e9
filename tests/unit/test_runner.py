"""The runner's own logic, over an in-memory transport: ack only after durable, retries, dedupe."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import pytest

import bridge.connection
from bridge.config import parse_config
from bridge.errors import AuthenticationError, BridgeError, ClientIdInUseError, ConnectionLostError, TransportError
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
        "reconnect": {"initial_delay": 0.01, "max_delay": 0.02},
        **extra,
    }
    return parse_config(doc, env={})


@pytest.fixture
def wire(monkeypatch):
    """Make open_transport hand out MemoryTransports; ``connect_errors`` are raised first, in order."""
    made: dict = {"all": []}

    def install(bodies, log=None, connect_errors=(), transport_class=MemoryTransport):
        errors = list(connect_errors)

        def fake_create(name, config, hooks=None):
            if errors:
                error = errors.pop(0)

                class Failing(MemoryTransport):
                    def connect(self, timeout):
                        raise error
                return Failing(config, hooks)
            made["t"] = transport_class(config, hooks, bodies, log)
            made["all"].append(made["t"])
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


def test_failing_sink_is_retried_and_nothing_is_acked_meanwhile(tmp_path, wire) -> None:
    log: list = []
    wire(GOOD[:4], log)
    sink = MemorySink(log=log, fail_flush=3)
    stats = Runner(make_config(tmp_path), sink=sink, max_events=4).run()
    assert sink.flush_calls == 4
    assert [e for e in log if e[0] == "ack"] == [("ack", f"m{i}") for i in range(1, 5)]
    assert log.index(("durable", "m4")) < log.index(("ack", "m1"))
    assert stats.delivered == 4


def test_stop_during_sink_failure_acknowledges_nothing(tmp_path, wire) -> None:
    made = wire(GOOD)
    runner = Runner(make_config(tmp_path), sink=MemorySink(fail_flush=10**9))
    threading.Timer(0.3, runner.stop).start()
    stats = runner.run()
    assert made["t"].acked == [] and stats.acknowledged == 0
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


def test_without_dead_letter_file_bad_events_stop_the_run_unacknowledged(tmp_path, wire) -> None:
    made = wire([GOOD[0], b"oops"])
    config = make_config(tmp_path).model_copy(update={"dead_letter": None})
    with pytest.raises(BridgeError, match="no dead_letter file is configured"):
        Runner(config, sink=MemorySink(), max_events=2).run()
    assert made["t"].acked == []


def test_redelivered_ids_are_acked_but_not_written_twice(tmp_path, wire) -> None:
    class Redelivering(MemoryTransport):
        def receive(self, max_events, timeout):
            events = super().receive(max_events, timeout)
            return [dataclasses.replace(e, message_id="same" if e.message_id in ("m1", "m3") else e.message_id)
                    for e in events]

    made = wire(GOOD[:4], transport_class=Redelivering)
    sink = MemorySink()
    stats = Runner(make_config(tmp_path, batch_size=1), sink=sink, max_events=3).run()
    assert [e.message_id for e in sink.durable] == ["same", "m2", "m4"]
    assert stats.duplicates == 1 and len(made["t"].acked) == 4


def test_lost_connection_reconnects_and_continues(tmp_path, wire) -> None:
    class Dropping(MemoryTransport):
        dropped = False

        def receive(self, max_events, timeout):
            if not Dropping.dropped and len(self.pending) < 8:
                Dropping.dropped = True
                raise ConnectionLostError("broker went away")
            return super().receive(max_events, timeout)

    made = wire(GOOD, transport_class=Dropping)
    sink = MemorySink()
    stats = Runner(make_config(tmp_path), sink=sink, idle_timeout=0.3).run()
    assert len(made["all"]) == 2 and all(t.closed for t in made["all"])
    # The second connection serves the whole list again (ids m1..m10): the 4 delivered before
    # the drop are recognised and only acknowledged.
    assert [e.message_id for e in sink.durable] == [f"m{i}" for i in range(1, 11)]
    assert stats.duplicates == 4


def test_connection_id_in_use_is_retried_until_free(tmp_path, wire, caplog) -> None:
    made = wire(GOOD[:2], connect_errors=[ClientIdInUseError("c")] * 3)
    stats = Runner(make_config(tmp_path), sink=MemorySink(), max_events=2).run()
    assert stats.delivered == 2 and len(made["all"]) == 1
    lines = [r.getMessage() for r in caplog.records if "already connected" in r.getMessage()]
    assert len(lines) == 1 and "connection id 'c'" in lines[0]


def test_reconnect_gives_up_after_max_attempts(tmp_path, wire) -> None:
    wire(GOOD, connect_errors=[ClientIdInUseError("c")] * 5)
    config = make_config(tmp_path, reconnect={"initial_delay": 0.01, "max_delay": 0.01, "max_attempts": 2})
    with pytest.raises(TransportError, match="gave up after 2 attempts: connection id 'c'"):
        Runner(config, sink=MemorySink()).run()


def test_refused_credentials_are_not_retried(tmp_path, wire) -> None:
    wire(GOOD, connect_errors=[AuthenticationError("refused")])
    with pytest.raises(AuthenticationError):
        Runner(make_config(tmp_path), sink=MemorySink()).run()


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


POISON = json.loads(GOOD[5])["md5"]
calls: list = []


def poisoned(argument) -> None:
    """A handler that always fails on the event whose md5 is POISON."""
    events = argument if isinstance(argument, list) else [argument]
    calls.append([e.data["md5"] for e in events])
    if any(e.data["md5"] == POISON for e in events):
        raise ValueError("cannot store this one")


def _dead(tmp_path: Path) -> list[dict]:
    path = tmp_path / "dead.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("mode", ["event", "batch"])
def test_handler_retried_then_dead_lettered_after_max_attempts(tmp_path, wire, mode) -> None:
    calls.clear()
    wire(GOOD)
    config = make_config(tmp_path, sink={"type": "handler", "handler": f"{__name__}:poisoned",
                                         "mode": mode, "max_attempts": 3})
    stats = Runner(config, max_events=len(GOOD)).run()
    dead = _dead(tmp_path)
    # per event: only the failing event is set aside; per batch: its whole batch (events 4..7)
    expected_dead = 1 if mode == "event" else 4
    assert len(dead) == expected_dead
    assert all("sink failed 3 times" in d["reason"] and "ValueError" in d["reason"] for d in dead)
    assert stats.dead_lettered == expected_dead and stats.delivered == len(GOOD) - expected_dead
    assert stats.acknowledged == len(GOOD)
    flat = [md5 for call in calls for md5 in call]
    assert flat.count(POISON) == 3  # tried exactly max_attempts times
    if mode == "event":  # the others of the poisoned batch were delivered once, not retried
        assert all(flat.count(json.loads(b)["md5"]) == 1 for b in GOOD if json.loads(b)["md5"] != POISON)


def test_handler_without_max_attempts_retries_until_stopped_and_acks_nothing(tmp_path, wire) -> None:
    calls.clear()
    made = wire(GOOD)
    config = make_config(tmp_path, sink={"type": "handler", "handler": f"{__name__}:poisoned",
                                         "mode": "event", "max_attempts": 0})
    runner = Runner(config, max_events=len(GOOD))
    timer = threading.Timer(0.5, runner.stop)
    timer.start()
    stats = runner.run()
    timer.cancel()
    assert _dead(tmp_path) == []
    assert stats.acknowledged == 4  # the first batch only; the poisoned one (4..7) stays on the broker
    assert made["t"].acked == ["m1", "m2", "m3", "m4"]


def test_max_attempts_needs_a_dead_letter_file(tmp_path) -> None:
    with pytest.raises(BridgeError, match="dead_letter"):
        parse_config({"profile": "generic", "subscription": {"destination": "queue:q", "connection_id": "c"},
                      "sink": {"type": "handler", "handler": "a:b"}}, env={})


class StoringSink(MemorySink):
    """A MemorySink that tells what it holds, as a store does."""

    def recent_ids(self, limit):
        return [e.message_id for e in reversed(self.durable)][:limit]


def test_a_restarted_runner_recognises_what_the_sink_already_holds(tmp_path, wire) -> None:
    sink = StoringSink()
    wire(GOOD[:6])
    Runner(make_config(tmp_path), sink=sink, max_events=6).run()
    made = wire(GOOD[:8])  # the broker delivers all again (ids m1..m8), as after a crash
    stats = Runner(make_config(tmp_path), sink=sink, idle_timeout=0.3).run()
    assert [e.message_id for e in sink.durable] == [f"m{i}" for i in range(1, 9)]
    assert stats.duplicates == 6 and stats.delivered == 2 and len(made["t"].acked) == 8


def test_redelivered_events_a_peer_wrote_are_not_written_again(tmp_path, wire) -> None:
    class Redelivered(MemoryTransport):
        def receive(self, max_events, timeout):
            return [dataclasses.replace(e, redelivered=True) for e in super().receive(max_events, timeout)]

    peer_reads: list[int] = []

    def peer(limit):
        peer_reads.append(limit)
        return ["m2", "m3"] if len(peer_reads) > 1 else []  # the peer wrote them after our start

    made = wire(GOOD[:4], transport_class=Redelivered)
    sink = MemorySink()
    stats = Runner(make_config(tmp_path), sink=sink, idle_timeout=0.3, peers=[peer]).run()
    assert [e.message_id for e in sink.durable] == ["m1", "m4"]
    assert stats.duplicates == 2 and len(made["t"].acked) == 4 and len(peer_reads) == 2


class FlushingAside(MemorySink):
    """A sink whose flush the runner runs on its flush thread; each flush takes a moment."""

    background_flush = True

    def flush(self) -> None:
        self.log.append(("flush", threading.current_thread().name))
        threading.Event().wait(0.02)
        super().flush()


class LoggedReceives(MemoryTransport):
    def receive(self, max_events, timeout):
        events = super().receive(max_events, timeout)
        if events:
            self.log.append(("received", events[0].message_id))
        return events


def test_a_background_flush_overlaps_the_next_receive_and_its_ack_follows_it(tmp_path, wire) -> None:
    log: list = []
    made = wire(GOOD, log, transport_class=LoggedReceives)
    sink = FlushingAside(log=log)
    stats = Runner(make_config(tmp_path), sink=sink, max_events=len(GOOD)).run()
    assert made["t"].acked == [f"m{i}" for i in range(1, 11)] and len(sink.durable) == 10
    for message_id in made["t"].acked:
        assert log.index(("durable", message_id)) < log.index(("ack", message_id))
    assert {entry[1] for entry in log if entry[0] == "flush"} == {"sink-flush_0"}
    # the second batch (m5..m8) was received before the first was acknowledged
    assert log.index(("received", "m5")) < log.index(("ack", "m1"))
    assert (stats.received, stats.delivered, stats.acknowledged, stats.duplicates) == (10, 10, 10, 0)


def test_a_failed_background_flush_is_written_again_before_anything_is_acked(tmp_path, wire) -> None:
    log: list = []
    made = wire(GOOD, log)
    sink = FlushingAside(log=log, fail_flush=2)
    stats = Runner(make_config(tmp_path), sink=sink, max_events=len(GOOD)).run()
    assert made["t"].acked == [f"m{i}" for i in range(1, 11)]
    assert [e.message_id for e in sink.durable] == [f"m{i}" for i in range(1, 11)]
    for message_id in made["t"].acked:
        assert log.index(("durable", message_id)) < log.index(("ack", message_id))
    assert stats.delivered == 10


def test_a_failed_background_flush_counts_towards_max_attempts(tmp_path, wire) -> None:
    made = wire(GOOD[:4])
    sink = FlushingAside(fail_flush=10**9)
    sink.config = dataclasses.make_dataclass("C", [("max_attempts", int, 3)])()
    stats = Runner(make_config(tmp_path), sink=sink, max_events=4).run()
    assert sink.flush_calls == 3  # the background attempt and two more
    assert stats.dead_lettered == 4 and made["t"].acked == ["m1", "m2", "m3", "m4"]


def test_a_lost_connection_with_a_batch_in_flight_acks_none_of_it_and_stores_it_once(tmp_path, wire) -> None:
    class LostAfterOne(MemoryTransport):
        calls = 0

        def receive(self, max_events, timeout):
            LostAfterOne.calls += 1
            if LostAfterOne.calls == 2:  # while the first batch is being flushed
                raise ConnectionLostError("broker went away")
            return super().receive(max_events, timeout)

    made = wire(GOOD[:8], transport_class=LostAfterOne)
    sink = FlushingAside()
    stats = Runner(make_config(tmp_path), sink=sink, max_events=8).run()
    first, second = made["all"]
    assert first.acked == []  # stored, but the connection was gone: the broker redelivers it
    assert [e.message_id for e in sink.durable] == [f"m{i}" for i in range(1, 9)]  # m1..m4 once
    assert second.acked == [f"m{i}" for i in range(1, 9)]
    assert (stats.duplicates, stats.delivered) == (4, 8)


def test_without_independent_acks_nothing_is_received_while_a_batch_is_flushed(tmp_path, wire) -> None:
    class Cumulative(LoggedReceives):
        independent_acks = False

    log: list = []
    made = wire(GOOD, log, transport_class=Cumulative)
    Runner(make_config(tmp_path), sink=FlushingAside(log=log), max_events=len(GOOD)).run()
    assert made["t"].acked == [f"m{i}" for i in range(1, 11)]
    assert log.index(("ack", "m4")) < log.index(("received", "m5"))
    assert {entry[1] for entry in log if entry[0] == "flush"} == {"MainThread"}
