"""The sinks alone, no broker: ``write`` + ``flush`` of ``--sink-events`` events in batches.

Each store sink (jsonl, sqlite, postgres) gets the same events, built as a transport builds them
(:func:`bridge.event.make_event` of the AtData-shaped bodies, OpenWire-style message ids), in
batches of ``--sink-batch`` (500, the default ``batch_size``): ``sink.write(batch)`` then
``sink.flush()``, which is what the runner does before it acknowledges. A fresh file, database or
table each run, created by ``open()`` before the clock starts. events/s = events / wall time of all
the batches; the slowest batch and the 99th percentile of the batch times are shown too, and the CPU time of
this process (all its threads: the sqlite checkpoint thread too; not the postgres server's) per
event, much less sensitive than events/s to other load on the machine; for postgres, "+ server" is
the CPU of the server process serving the sink (/proc/PID/stat, 10 ms ticks).
"redelivery" writes every batch a second time into the same store (every event already stored:
the path a redelivered batch takes); "md5_index: false" is the same store without its md5 index.

The postgres server is a throwaway one started like the tests' (:mod:`tests.pgserver`, Debian's
binaries), with ``fsync=off``; without its binaries or psycopg the row says why.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from bench_lib.consumers import percentile
from bench_lib.procs import ROOT

KINDS = ("jsonl", "sqlite", "postgres")


@dataclass
class SinkRow:
    """The runs of one sink."""

    kind: str
    label: str
    rates: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    max_ms: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # this process's CPU (all its threads) per event
    server_us: list[float] = field(default_factory=list)  # postgres: its server process's CPU per event
    note: str = ""


def make_events(count: int) -> list:
    """``count`` events as the openwire transport makes them."""
    from bridge.event import make_event
    from bridge.publish import generated_bodies

    stamp = int(time.time() * 1000)
    return [make_event(body, 1 << 20, message_id=f"ID:bench-host-41234-1764700000000-1:1:1:1:{i + 1}",
                       destination="queue:bench.sinks", timestamp=stamp + i // 100, transport="openwire")
            for i, body in enumerate(generated_bodies(count))]


def run(kinds: Sequence[str], count: int, batch: int, repeat: int, say: Callable[[str], None]) -> list[SinkRow]:
    """Measure each sink ``repeat`` times (sinks interleaved); returns one row per sink and variant."""
    from bridge.config import JsonlSinkConfig, PostgresSinkConfig, SqliteSinkConfig
    from bridge.sinks import create_sink

    events = make_events(count)
    batches = [events[i:i + batch] for i in range(0, count, batch)]
    rows = []
    plans = []  # (row, kind, config options, redeliver)
    with postgres_server(kinds) as (pg_url, pg_note), tempfile.TemporaryDirectory(prefix="amq-bridge-sinkbench-") as tmp:
        for kind in kinds:
            variants = [({}, False)] if kind == "jsonl" else [({}, False), ({}, True), ({"md5_index": False}, False)]
            for extra, redeliver in variants:
                suffix = "".join(f", {k}: {str(v).lower()}" for k, v in extra.items())
                row = SinkRow(kind, kind + suffix + (", redelivery" if redeliver else ""))
                if kind == "postgres" and pg_url is None:
                    row.note = pg_note
                rows.append(row)
                plans.append((row, kind, extra, redeliver))
        serial = 0
        for rep in range(repeat):
            for row, kind, extra, redeliver in plans:
                if row.note:
                    continue
                serial += 1
                where = Path(tmp) / f"{serial}"
                where.mkdir()
                if kind == "jsonl":
                    config = JsonlSinkConfig(type="jsonl", path=where / "events.jsonl")
                elif kind == "sqlite":
                    config = SqliteSinkConfig(type="sqlite", path=where / "events.db", **extra)
                else:
                    config = PostgresSinkConfig(type="postgres", url=pg_url or "", table=f"bench_{serial}", **extra)
                sink = create_sink(config)
                sink.open()
                try:
                    if redeliver:
                        for chunk in batches:
                            sink.write(chunk)
                            sink.flush()
                    times = []
                    server = _server_cpu(sink)
                    started, cpu = time.perf_counter(), time.process_time()
                    for chunk in batches:
                        t0 = time.perf_counter()
                        sink.write(chunk)
                        sink.flush()
                        times.append(time.perf_counter() - t0)
                    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
                    if server is not None:
                        row.server_us.append((_server_cpu(sink) - server) / count * 1e6)
                finally:
                    sink.close()
                row.rates.append(count / seconds)
                row.p99_ms.append(percentile(times, 99) * 1000)
                row.max_ms.append(max(times) * 1000)
                row.cpu_us.append(cpu / count * 1e6)
                say(f"bench: sink {row.label} run {rep + 1}/{repeat}: {count / seconds:,.0f} events/s, "
                    f"{seconds / count * 1e6:.1f} µs/event ({row.cpu_us[-1]:.1f} µs CPU), batch p99 {row.p99_ms[-1]:.1f} ms, "
                    f"max {row.max_ms[-1]:.1f} ms")
    return rows


class postgres_server:
    """A throwaway server (url, None), or (None, why there is none)."""

    def __init__(self, kinds: Sequence[str]) -> None:
        self.wanted = "postgres" in kinds
        self.server = None

    def __enter__(self) -> tuple[str | None, str]:
        if not self.wanted:
            return None, ""
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        from tests.pgserver import PgServer, find_bindir

        try:
            import psycopg  # noqa: F401
        except ImportError:
            return None, "n/a: psycopg is not installed"
        bindir = find_bindir()
        if bindir is None:
            return None, "n/a: PostgreSQL is not installed (apt-get install postgresql)"
        self.server = PgServer(bindir)
        self.server.start()
        return self.server.url, ""

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.destroy()


def _server_cpu(sink: object) -> float | None:
    """CPU seconds of the postgres server process serving ``sink`` (None for other sinks)."""
    conn = getattr(sink, "conn", None)
    if conn is None:
        return None
    try:
        with open(f"/proc/{conn.info.backend_pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sink_table(rows: Sequence[SinkRow], count: int, batch: int, repeat: int) -> list[str]:
    """The markdown table of the sink-alone runs."""
    if not rows:
        return []
    lines = [f"The sinks alone (no broker): write + flush of {count:,} events in batches of {batch}, "
             f"median of {repeat} runs:", "",
             "| sink | events/s | min–max | µs/event | CPU µs/event | batch p99 ms | slowest batch ms |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        if row.note or not row.rates:
            lines.append(f"| {row.label} | {row.note or 'failed'} | | | | | |")
            continue
        rate = statistics.median(row.rates)
        lines.append(f"| {row.label} | {rate:,.0f} | {min(row.rates):,.0f}–{max(row.rates):,.0f} | "
                     f"{1e6 / rate:.1f} | {statistics.median(row.cpu_us):.1f}"
                     f"{f' (+{statistics.median(row.server_us):.1f} server)' if row.server_us else ''} | {statistics.median(row.p99_ms):.1f} | {max(row.max_ms):.1f} |")
    return lines
