"""Reading the message ids of a file's last lines from its end, and the window they seed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from bridge.config import parse_config
from bridge.deadletter import DeadLetterFile, read_lines, remove_lines
from bridge.dedupe import RecentIds, window_size
from bridge.event import make_event
from bridge.sinks.lines import event_lines, jsonl_recent_ids
from bridge.sinks.tail import BLOCK, line_id, tail_ids


def events(first: int, count: int, body: bytes = b'{"md5":"x"}'):
    return [make_event(body, 1 << 30, message_id=f"ID:h-{i}", destination="queue:q", transport="stomp")
            for i in range(first, first + count)]


def test_ids_come_newest_first_across_block_boundaries_and_stop_at_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(event_lines(events(0, 5000)))
    assert path.stat().st_size > 3 * BLOCK
    assert tail_ids(path, 3) == ["ID:h-4999", "ID:h-4998", "ID:h-4997"]
    assert tail_ids(path, 10_000) == [f"ID:h-{i}" for i in reversed(range(5000))]
    assert tail_ids(tmp_path / "missing.jsonl", 10) == [] and tail_ids(path, 0) == []


def test_a_torn_last_line_and_lines_longer_than_a_block(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    big = json.dumps({"pad": "x" * (3 * BLOCK)}).encode()
    path.write_bytes(event_lines(events(0, 2)) + event_lines(events(2, 1, big)) + event_lines(events(3, 1))
                     + b'{"message_id":"ID:torn","data":{"md')
    assert tail_ids(path, 10) == ["ID:h-3", "ID:h-2", "ID:h-1", "ID:h-0"]


def test_ids_with_escapes_and_records_whose_other_fields_mention_message_id() -> None:
    odd = 'ID:"quoted"\\back\u00e9'
    assert line_id(json.dumps({"message_id": odd, "data": {}}).encode()) == odd
    record = {"reason": 'error "message_id": "fake"', "message_id": "ID:real", "headers": {"message_id": "h"}}
    assert line_id(json.dumps(record).encode()) == "ID:real"
    assert line_id(b'{"data":{"x":1}}') is None


def test_jsonl_reads_the_newest_rotated_file_while_the_current_one_is_short(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    (tmp_path / "e.jsonl.20260101T000000Z").write_bytes(event_lines(events(0, 10)))
    (tmp_path / "e.jsonl.20260102T000000Z").write_bytes(event_lines(events(10, 10)))
    path.write_bytes(event_lines(events(20, 3)))
    assert jsonl_recent_ids(path, 5) == ["ID:h-22", "ID:h-21", "ID:h-20", "ID:h-19", "ID:h-18"]
    assert len(jsonl_recent_ids(path, 100)) == 23


def test_dead_letter_file_gives_its_newest_ids_and_survives_a_rewrite_under_it(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    writer = DeadLetterFile(path)
    bad = [make_event(b"nope", 100, message_id=f"ID:d-{i}", destination="queue:q") for i in range(4)]
    writer.put(bad[:2])
    assert writer.recent_ids(10) == ["ID:d-1", "ID:d-0"]
    first = read_lines(path)[0]
    assert remove_lines(path, [first]) == 1  # a replay renamed a new file over the one the writer has open
    writer.put(bad[2:])
    assert DeadLetterFile(path).recent_ids(10) == ["ID:d-3", "ID:d-2", "ID:d-1"]
    writer.close()


def test_window_covers_every_workers_prefetch_and_batch() -> None:
    def config(**extra):
        return parse_config({"profile": "generic", "subscription": {"destination": "queue:q", "connection_id": "c"},
                             **extra}, env={})

    assert window_size(config()) == 10_000
    assert window_size(config(workers=8)) == (1000 + 4 * 500) * 8
    assert window_size(config(stomp={"prefetch": 4000}, batch_size=1000, dedupe_window=100)) == 8000
    assert window_size(config(dedupe_window=0, workers=8)) == 0


def test_seeded_ids_never_push_newer_ones_out() -> None:
    window = RecentIds(3)
    window.add(["a", "b"])
    window.seed([f"s{i}" for i in range(10)])
    assert "a" in window and "s9" in window
    window.add(["c", "d", "e"])  # the young generation fills: the seeded one is forgotten
    assert "s0" not in window and {"c", "d", "e"} <= {i for i in "abcde" if i in window}


def test_seeding_from_a_1_gib_jsonl_file_is_bounded(tmp_path: Path) -> None:
    """A sparse 1 GiB file ending in real lines: the cost is that of the window, not the file."""
    path = tmp_path / "big.jsonl"
    tail = event_lines(events(0, 20_000, b'{"md5":"098f6bcd4621d373cade4e832627b4f6","label":"' + b"a" * 40 + b'"}'))
    with open(path, "wb") as out:
        out.truncate((1 << 30) - len(tail) - 1)
        out.seek(0, os.SEEK_END)
        out.write(b"\n" + tail)
    assert path.stat().st_size == 1 << 30
    started = time.perf_counter()
    ids = jsonl_recent_ids(path, 10_000)
    took = time.perf_counter() - started
    assert ids[0] == "ID:h-19999" and len(ids) == 10_000
    print(f"seed 10,000 ids from a 1 GiB jsonl file: {took * 1000:.1f} ms")
    assert took < 2.0
