"""What a fault test counts: published items against what the sink and dead-letter file hold.

An *item* is either a good event, known by its ``seq`` (``bridge.publish.sample_event(seq,
sequence=True)``), or a bad message, known by its ``faultkind`` header (set by the test that sent
it). For one run:

- ``lost``: published items found neither in the sink nor in the dead-letter file;
- ``duplicated``: copies beyond the first of items that were found (sink and dead letter together);
- ``unexpected``: records that match no published item where they are, e.g. a seq never
  published, a good event with other content, a good event set aside, a bad message in the sink,
  or a line that is not JSON at all (``torn`` counts those separately).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Collection, Iterable

from bridge.publish import sample_event

#: Header (STOMP) / string property (JMS) naming the kind of a bad message a test sent.
KIND_HEADER = "faultkind"


@dataclass
class Tally:
    """The figures of one run; ``*_sample`` hold a few examples for failure messages."""

    published: int
    delivered: int
    dead_lettered: int
    lost: int
    duplicated: int
    unexpected: int
    torn: int = 0
    lost_sample: list[Any] = field(default_factory=list)
    duplicated_sample: list[Any] = field(default_factory=list)
    unexpected_sample: list[Any] = field(default_factory=list)
    found: Counter = field(default_factory=Counter, repr=False)

    def summary(self) -> str:
        """One line for assertion messages."""
        return (f"published={self.published} delivered={self.delivered} dead_lettered={self.dead_lettered} "
                f"lost={self.lost} duplicated={self.duplicated} unexpected={self.unexpected} torn={self.torn}; "
                f"lost e.g. {self.lost_sample}; duplicated e.g. {self.duplicated_sample}; "
                f"unexpected e.g. {self.unexpected_sample}")

    def figures(self) -> dict[str, int]:
        """The counts only, for the fault report."""
        data = asdict(self)
        return {key: data[key] for key in ("published", "delivered", "dead_lettered", "lost", "duplicated",
                                           "unexpected", "torn")}


def read_records(path: Path | None) -> tuple[list[dict[str, Any]], int]:
    """The JSON objects of a JSON-lines file, and how many non-blank lines were not JSON objects."""
    if path is None or not path.exists():
        return [], 0
    records, torn = [], 0
    for line in path.read_bytes().splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            torn += 1
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            torn += 1
    return records, torn


def count_lines(path: Path) -> int:
    """Newline-terminated lines in ``path`` (0 if it does not exist): cheap progress polling."""
    try:
        with open(path, "rb") as stream:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: stream.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


def _sink_key(record: dict[str, Any]) -> tuple[str, Any] | None:
    data = record.get("data")
    if isinstance(data, dict) and isinstance(data.get("seq"), int):
        seq = data["seq"]
        return ("seq", seq) if data == sample_event(seq, sequence=True) else None
    return None


def _dead_key(record: dict[str, Any]) -> tuple[str, Any] | None:
    headers = record.get("headers") or {}
    if isinstance(headers, dict) and headers.get(KIND_HEADER):
        return ("kind", headers[KIND_HEADER])
    try:
        data = json.loads(base64.b64decode(record.get("body_base64") or ""))
    except (ValueError, binascii.Error):
        return None
    if isinstance(data, dict) and isinstance(data.get("seq"), int):
        return ("seq", data["seq"])  # a good event set aside: seen, but in the wrong place
    return None


def tally(
    seqs: Iterable[int],
    sinks: Iterable[Path],
    dead_letters: Iterable[Path | None] = (),
    bad_kinds: Collection[str] = (),
) -> Tally:
    """Count one run.

    Args:
        seqs: The seq numbers of the good events published.
        sinks: Sink files (JSON lines with ``data``: the jsonl sink or the test handlers' output),
            or anything with a ``records()`` giving ``(records, torn)`` (a ``harness.SinkView``).
        dead_letters: Dead-letter files (JSON lines with ``headers`` and ``body_base64``).
        bad_kinds: The ``faultkind`` of every bad message published.
    """
    expected = {("seq", s) for s in seqs} | {("kind", k) for k in bad_kinds}
    found: Counter = Counter()
    unexpected: list[Any] = []
    delivered = dead = torn = 0
    for path in sinks:
        records, bad_lines = path.records() if hasattr(path, "records") else read_records(path)
        torn += bad_lines
        delivered += len(records)
        for record in records:
            key = _sink_key(record)
            if key in expected:
                found[key] += 1
            else:
                unexpected.append(("sink", record.get("message_id"), str(record.get("data"))[:80]))
    for path in dead_letters:
        records, bad_lines = read_records(path)
        torn += bad_lines
        dead += len(records)
        for record in records:
            key = _dead_key(record)
            if key in expected:
                found[key] += 1
            if key is None or key not in expected or key[0] == "seq":
                unexpected.append(("dead_letter", record.get("message_id"), record.get("reason")))
    lost = sorted(expected - found.keys(), key=str)
    dups = {key: n - 1 for key, n in found.items() if n > 1}
    return Tally(
        published=len(expected), delivered=delivered, dead_lettered=dead, lost=len(lost),
        duplicated=sum(dups.values()), unexpected=len(unexpected) + torn, torn=torn,
        lost_sample=_compress(lost), duplicated_sample=sorted(dups, key=str)[:10],
        unexpected_sample=unexpected[:10], found=found,
    )


def _compress(keys: list[tuple[str, Any]]) -> list[Any]:
    """Lost keys shown briefly: seq runs as ``first-last`` ranges, at most 10 entries."""
    seqs = sorted(v for k, v in keys if k == "seq")
    runs: list[Any] = []
    for seq in seqs:
        if runs and isinstance(runs[-1], list) and runs[-1][1] == seq - 1:
            runs[-1][1] = seq
        else:
            runs.append([seq, seq])
    shown = [f"{a}-{b}" if a != b else a for a, b in runs] + [f"kind:{v}" for k, v in keys if k == "kind"]
    return shown[:10]


def record(scenario: str, transport: str, result: Tally, recovery: float | None, **extra: Any) -> None:
    """Append this run's figures as one JSON line to ``$AMQ_BRIDGE_FAULT_REPORT`` (when set)."""
    line = {"scenario": scenario, "transport": transport, **result.figures(),
            "recovery_s": None if recovery is None else round(recovery, 2), **extra}
    if result.lost:
        line["lost_sample"] = result.lost_sample
    if result.unexpected:
        line["unexpected_sample"] = [str(item) for item in result.unexpected_sample]
    print(f"fault report: {json.dumps(line)}")
    target = os.environ.get("AMQ_BRIDGE_FAULT_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")
