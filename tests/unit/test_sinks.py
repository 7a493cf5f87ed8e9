"""The line sinks and the handler sink."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.config import HandlerSinkConfig, JsonlSinkConfig, SqliteSinkConfig
from bridge.errors import ConfigError, SinkError
from bridge.event import make_event
from bridge.sinks import create_sink

EVENTS = [make_event(json.dumps({"md5": f"{i:032x}"}).encode(), 1000, message_id=f"m{i}",
                     destination="queue:q", transport="stomp") for i in range(3)]
received: list = []


def collect(events) -> None:
    received.append([e.message_id for e in events])


def explode(events) -> None:
    raise ValueError("database is down")


def test_jsonl_appends_one_object_per_line(tmp_path: Path) -> None:
    path = tmp_path / "out" / "events.jsonl"
    for _ in range(2):
        with create_sink(JsonlSinkConfig(type="jsonl", path=path, fsync="batch")) as sink:
            sink.write(EVENTS)
            sink.flush()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["message_id"] for line in lines] == ["m0", "m1", "m2"] * 2
    assert lines[0]["data"] == {"md5": "0" * 32} and lines[0]["destination"] == "queue:q"


def test_jsonl_that_cannot_open_says_where(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(SinkError, match="jsonl sink cannot open .*file/events.jsonl"):
        create_sink(JsonlSinkConfig(type="jsonl", path=tmp_path / "file" / "events.jsonl")).open()


def test_handler_gets_each_batch_once_per_flush() -> None:
    received.clear()
    with create_sink(HandlerSinkConfig(type="handler", handler=f"{__name__}:collect")) as sink:
        sink.write(EVENTS[:2])
        sink.write(EVENTS[2:])
        sink.flush()
        sink.flush()
    assert received == [["m0", "m1", "m2"]]


def test_handler_exception_becomes_sink_error_and_the_batch_is_not_kept() -> None:
    sink = create_sink(HandlerSinkConfig(type="handler", handler=f"{__name__}:explode"))
    sink.open()
    sink.write(EVENTS)
    with pytest.raises(SinkError, match="raised ValueError: database is down"):
        sink.flush()
    assert sink.pending == []  # the runner writes the batch again when it retries


@pytest.mark.parametrize("spec,words", [("no_such_module_x:f", "No module named"), (f"{__name__}:nothing", "has no attribute"),
                                         (f"{__name__}:EVENTS", "is not callable")])
def test_handler_that_cannot_load_is_a_config_error(spec: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as info:
        create_sink(HandlerSinkConfig(type="handler", handler=spec)).open()
    assert info.value.key == "sink.handler"


def test_sqlite_stores_each_message_id_once_with_its_fields(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "db" / "events.db"
    for _ in range(2):  # the same batch again, as after a redelivery
        with create_sink(SqliteSinkConfig(type="sqlite", path=path)) as sink:
            sink.write(EVENTS)
            sink.flush()
    db = sqlite3.connect(path)
    rows = db.execute("SELECT message_id, md5, label, payload, destination FROM events ORDER BY message_id").fetchall()
    assert [r[0] for r in rows] == ["m0", "m1", "m2"]
    assert rows[1][1] == f"{1:032x}" and rows[1][2] is None
    assert json.loads(rows[1][3]) == {"md5": f"{1:032x}"} and rows[1][4] == "queue:q"
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_failure_is_a_sink_error_and_keeps_nothing_half_written(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "events.db"
    sink = create_sink(SqliteSinkConfig(type="sqlite", path=path))
    sink.open()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    sink.db.execute("PRAGMA busy_timeout=50")
    sink.write(EVENTS)
    with pytest.raises(SinkError, match="sqlite sink cannot write .*locked"):
        sink.flush()
    locker.execute("ROLLBACK")
    sink.write(EVENTS)  # the runner's retry
    sink.flush()
    assert sink.db.execute("SELECT count(*) FROM events").fetchone()[0] == 3
    sink.close()


def test_sqlite_batch_of_several_statements_is_one_transaction(tmp_path: Path) -> None:
    """A batch longer than one statement holds (1,201 rows: three statements) is stored whole,
    a redelivered part of it once; a failure in its last statement keeps none of it."""
    from bridge.sinks import sqlite as sqlite_sink

    many = [make_event(json.dumps({"md5": f"{i:032x}"}).encode(), 1000, message_id=f"m{i:05}",
                       destination="queue:q", transport="stomp") for i in range(1201)]
    sink = create_sink(SqliteSinkConfig(type="sqlite", path=tmp_path / "events.db"))
    sink.open()
    sink.write(many[:10])
    sink.flush()
    sink.write(many)
    sink.flush()
    db = sink.db
    assert db.execute("SELECT count(*), count(DISTINCT message_id) FROM events").fetchone() == (1201, 1201)
    assert db.execute("SELECT payload FROM events WHERE message_id = 'm01200'").fetchone()[0] == many[-1].body.decode()
    db.execute("CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.message_id = 'x01200' "
               "BEGIN SELECT RAISE(ABORT, 'refused'); END")
    again = [make_event(e.body, 1000, message_id="x" + e.message_id[1:], destination="queue:q", transport="stomp")
             for e in many]
    assert sqlite_sink.MAX_ROWS_PER_STATEMENT < len(again)
    sink.write(again)
    with pytest.raises(SinkError, match="refused"):
        sink.flush()
    assert db.execute("SELECT count(*) FROM events WHERE message_id LIKE 'x%'").fetchone()[0] == 0
    assert not db.in_transaction
    sink.close()


def jsonl_lines(path: Path) -> list[str]:
    return [json.loads(line)["message_id"] for line in path.read_text().splitlines()]


def test_jsonl_rotates_by_size_at_batch_boundaries_and_keeps_the_newest(tmp_path: Path, monkeypatch) -> None:
    from bridge.sinks import lines

    path = tmp_path / "events.jsonl"
    one_batch = len(b"".join(map(lines.event_line, EVENTS)))
    stamps = iter(f"20261201T10000{i}Z" for i in range(10))
    monkeypatch.setattr(lines.time, "strftime", lambda fmt, t=None: next(stamps))
    with create_sink(JsonlSinkConfig(type="jsonl", path=path, rotate_bytes=one_batch * 2, keep=2)) as sink:
        for _ in range(7):  # two batches fit in a file: the 3rd, 5th and 7th start a new one
            sink.write(EVENTS)
            sink.flush()
    rotated = lines.rotated_files(path)
    assert [p.name for p in rotated] == ["events.jsonl.20261201T100001Z", "events.jsonl.20261201T100002Z"]
    assert all(jsonl_lines(p) == ["m0", "m1", "m2"] * 2 for p in rotated)  # whole batches only
    assert jsonl_lines(path) == ["m0", "m1", "m2"]


def test_jsonl_rotates_by_age(tmp_path: Path, monkeypatch) -> None:
    from bridge.sinks import lines

    path, clock = tmp_path / "events.jsonl", [1000.0]
    monkeypatch.setattr(lines.time, "monotonic", lambda: clock[0])
    with create_sink(JsonlSinkConfig(type="jsonl", path=path, rotate_seconds=60, fsync="batch")) as sink:
        sink.write(EVENTS)
        sink.flush()
        clock[0] += 30
        sink.write(EVENTS)  # not old enough yet
        sink.flush()
        clock[0] += 31
        sink.write(EVENTS)
        sink.flush()
    (rotated,) = lines.rotated_files(path)
    assert jsonl_lines(rotated) == ["m0", "m1", "m2"] * 2 and jsonl_lines(path) == ["m0", "m1", "m2"]


def test_jsonl_cuts_a_torn_last_line_on_open(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with create_sink(JsonlSinkConfig(type="jsonl", path=path)) as sink:
        sink.write(EVENTS)
        sink.flush()
    with open(path, "ab") as out:
        out.write(b'{"message_id":"m9","destin')  # a write cut short by a crash
    with create_sink(JsonlSinkConfig(type="jsonl", path=path)) as sink:
        sink.write(EVENTS[:1])
        sink.flush()
    assert jsonl_lines(path) == ["m0", "m1", "m2", "m0"]


def test_jsonl_write_error_is_a_sink_error_and_heals(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.symlink_to("/dev/full")
    sink = create_sink(JsonlSinkConfig(type="jsonl", path=path, fsync="batch"))
    sink.open()
    with pytest.raises(SinkError, match="No space left on device"):
        sink.write(EVENTS)
        sink.flush()
    path.unlink()
    sink.write(EVENTS)
    sink.flush()
    sink.close()
    assert jsonl_lines(path) == ["m0", "m1", "m2"]


def _md5_events(start: int, count: int) -> list:
    """Events with random-looking md5s, as a feed has: each dirties an index page of its own."""
    import hashlib

    return [make_event(json.dumps({"md5": hashlib.md5(str(i).encode()).hexdigest()}).encode(), 1000,
                       message_id=f"m{i:06}", destination="queue:q", transport="stomp")
            for i in range(start, start + count)]


def test_sqlite_wal_stays_bounded_under_back_to_back_batches(tmp_path: Path, monkeypatch) -> None:
    """Batches written back to back, as in a drain: a passive checkpoint alone never copies the
    whole WAL, so the file would grow by every batch; the checkpoint thread's hurry and the
    writer's catch-up keep it near the limit, and every event is stored."""
    from bridge.sinks import sqlite as sqlite_sink

    limit = 256 * 1024
    monkeypatch.setattr(sqlite_sink, "JOURNAL_SIZE_LIMIT", limit)
    sink = create_sink(SqliteSinkConfig(type="sqlite", path=tmp_path / "events.db"))
    sink.open()
    catch_ups = []
    real = sink.checkpointer.catch_up
    monkeypatch.setattr(sink.checkpointer, "catch_up", lambda timeout: catch_ups.append(real(timeout)) or True)
    wal, largest, hurried = tmp_path / "events.db-wal", 0, []
    for batch in range(60):
        sink.write(_md5_events(batch * 500, 500))
        sink.flush()
        largest = max(largest, wal.stat().st_size)
        hurried.append(sink.checkpointer.hurrying)
    assert largest <= 8 * 1024 * 1024, f"the WAL grew to {largest:,} bytes"
    assert catch_ups and all(catch_ups)  # each catch-up saw its checkpoint end
    assert any(hurried)  # past the limit, the checkpoint thread ran after every commit
    assert sink.checkpointer.catch_up(10)
    sink.write(_md5_events(60 * 500, 1))
    sink.flush()  # starts the WAL afresh and cuts it back: no more hurry
    assert wal.stat().st_size <= limit and not sink.checkpointer.hurrying
    assert sink.db.execute("SELECT count(*) FROM events").fetchone()[0] == 30001
    sink.close()


def test_sqlite_reader_holding_a_snapshot_is_waited_for_only_as_the_wal_grows(tmp_path: Path, monkeypatch) -> None:
    """A reader in a long read transaction keeps the WAL from starting afresh: the writer then
    waits for a checkpoint once per limit's worth of growth, not at every batch."""
    import sqlite3

    from bridge.sinks import sqlite as sqlite_sink

    limit = 256 * 1024
    monkeypatch.setattr(sqlite_sink, "JOURNAL_SIZE_LIMIT", limit)
    path = tmp_path / "events.db"
    sink = create_sink(SqliteSinkConfig(type="sqlite", path=path))
    sink.open()
    sink.write(_md5_events(0, 10))
    sink.flush()
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM events").fetchone()[0] == 10  # the snapshot is held
    catch_ups = []
    real = sink.checkpointer.catch_up
    monkeypatch.setattr(sink.checkpointer, "catch_up", lambda timeout: catch_ups.append(real(timeout)) or True)
    for batch in range(1, 41):
        sink.write(_md5_events(batch * 500, 500))
        sink.flush()
    size = (tmp_path / "events.db-wal").stat().st_size
    assert size > 4 * limit  # the snapshot kept it from starting afresh
    assert 1 <= len(catch_ups) <= size // limit, f"{len(catch_ups)} catch-ups for a WAL of {size:,} bytes"
    reader.execute("COMMIT")
    reader.close()
    assert sink.db.execute("SELECT count(*) FROM events").fetchone()[0] == 20010
    sink.close()
