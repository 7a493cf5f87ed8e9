"""The consumers compared, and one measured run of each: preloaded (throughput) or paced (latency).

(a)  plain Java JMS: ``receive()`` + ``acknowledge()`` each message (INDIVIDUAL_ACKNOWLEDGE)
(a') plain Java JMS: ``receive()``, CLIENT_ACKNOWLEDGE, ``acknowledge()`` every 200th message
(b)  plain stomp.py: a listener, ``client-individual``, one ACK per message
(c)  ``amq-bridge run``, openwire, into the jsonl sink;  (c') the same into the sqlite sink;
(c'') the same into the postgres sink (a throwaway server the benchmark starts, like the tests')
(d)  ``amq-bridge run``, stomp, into the jsonl sink
(e)  (c') with ``sink.md5_index: false``: what the md5 index costs the whole bridge

Every consumer is a process of its own, started by the benchmark, so start-up time and memory are
its own. The bridges run with the defaults of config.yaml (batch 500, prefetch 1000, no fsync).
"""

from __future__ import annotations

import math
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import yaml

from bench_lib.procs import HERE, ROOT, VENV_BIN, BenchError, Broker, Children, LineReader, ProcSampler, now_ms
from bench_lib.sinkwatch import SinkWatch, prepare_postgres

#: The environment variable holding the postgres url in the bridge configs (it holds a password).
PG_URL_VAR = "AMQ_BENCH_PG_URL"


@dataclass(frozen=True)
class Consumer:
    """One row of the table."""

    key: str  # a, a', b, c, c', c'', d as in the issue; e
    label: str
    kind: str  # java, stomp or bridge
    ack: str = ""  # java: individual or client200
    transport: str = ""  # bridge
    sink: str = ""  # bridge: jsonl, sqlite or postgres
    sink_options: tuple[tuple[str, object], ...] = ()  # bridge: more keys of its sink section

    @property
    def slug(self) -> str:
        """The key without the quote, for queue names and file names."""
        return self.key.replace("'", "2")


CONSUMERS = (
    Consumer("a", "plain Java JMS, individual ack", "java", ack="individual"),
    Consumer("a'", "plain Java JMS, ack every 200", "java", ack="client200"),
    Consumer("b", "plain stomp.py, client-individual", "stomp"),
    Consumer("c", "amq-bridge openwire → jsonl", "bridge", transport="openwire", sink="jsonl"),
    Consumer("c'", "amq-bridge openwire → sqlite", "bridge", transport="openwire", sink="sqlite"),
    Consumer("c''", "amq-bridge openwire → postgres", "bridge", transport="openwire", sink="postgres"),
    Consumer("d", "amq-bridge stomp → jsonl", "bridge", transport="stomp", sink="jsonl"),
    Consumer("e", "amq-bridge openwire → sqlite, md5_index: false", "bridge", transport="openwire", sink="sqlite",
             sink_options=(("md5_index", False),)),
)


@dataclass
class Run:
    """What one run measured."""

    events: int
    startup_s: float  # process start to first event (received, or for a bridge: in the sink)
    rate: float  # events per second from the first event to the last
    rss_mib: float  # peak VmRSS of the consumer process
    cpu_us: float  # CPU time of the consumer process per event, first event (latency: publish start) to last
    broker_cpu_us: float  # CPU time of the broker process per event, over the same span
    latencies: list[float] = field(default_factory=list)  # ms, broker timestamp to sink/ack
    publish_rate: float | None = None  # what the paced publisher achieved (latency runs)


@dataclass
class Bench:
    """What every run needs: the broker and how to start Java."""

    children: Children
    broker: Broker
    workdir: Path
    java_cp: str  # the compiled JmsBench plus the client jars
    bodies: Path  # one AtData-shaped JSON event per line
    persistent: bool
    broker_cpu: ProcSampler  # follows the broker process
    pg_url: str = ""  # the postgres server of (c''), if there is one

    def java(self, *args: str) -> list[str]:
        return ["java", "-cp", self.java_cp, "JmsBench", *args]

    def produce(self, queue: str, count: int, rate: float = 0, timeout: float | None = None) -> float:
        """Send ``count`` events to ``queue`` (RATE 0: as fast as possible); returns the rate achieved."""
        process = self.children.start(
            self.java("produce", self.broker.openwire_url, queue, str(self.bodies), str(count),
                      "persistent" if self.persistent else "nonpersistent", str(rate)),
            self.workdir / "producer.log")
        limit = timeout or 60 + count / 1000
        try:
            line = LineReader(process).until("sent", limit)[-1]
            if process.wait(60) != 0:
                raise BenchError(f"producer exited with status {process.returncode}")
        except (BenchError, subprocess.TimeoutExpired) as exc:
            raise BenchError(f"producer to {queue}: {exc}; {_tail(self.workdir / 'producer.log')}") from None
        finally:
            self.children.stop(process)
        _, sent, seconds = line.split()
        return int(sent) / max(float(seconds), 1e-9)

    def run(self, consumer: Consumer, queue: str, count: int, *, rate: float | None = None) -> Run:
        """Consume ``count`` events from ``queue``: already there, or (with ``rate``) published at
        that pace once the consumer is subscribed."""
        rundir = self.workdir / f"{consumer.slug}-{queue}"
        rundir.mkdir()
        if consumer.kind == "bridge":
            return self._run_bridge(consumer, queue, count, rate, rundir)
        return self._run_plain(consumer, queue, count, rate, rundir)

    def _run_plain(self, consumer: Consumer, queue: str, count: int, rate: float | None, rundir: Path) -> Run:
        client_id = f"bench-{consumer.slug}-{rundir.name}"
        latency_file = [str(rundir / "latencies.txt")] if rate else []
        if consumer.kind == "java":
            argv = self.java("consume", self.broker.openwire_url, queue, str(count), consumer.ack, client_id,
                             *latency_file)
        else:
            argv = [str(VENV_BIN / "python"), str(HERE / "stomp_consumer.py"), self.broker.stomp_host, queue,
                    str(count), client_id, *latency_file]
        log = rundir / "consumer.log"
        started = now_ms()
        process = self.children.start(argv, log)
        sampler = ProcSampler(process.pid)
        publish_rate = None
        try:
            reader = LineReader(process)
            if rate:
                reader.until("ready", 60)
                published = now_ms()
                publish_rate = self.produce(queue, count, rate, timeout=count / rate + 60)
            lines = reader.until("done", _consume_timeout(count))
            status = process.wait(60)
        except (BenchError, subprocess.TimeoutExpired) as exc:
            raise BenchError(f"{consumer.key}: {exc}; {_tail(log)}") from None
        finally:
            peak = sampler.stop()
            self.children.stop(process)
        if status != 0:
            raise BenchError(f"{consumer.key}: exited with status {status}; {_tail(log)}")
        stamps = {line.split()[0]: line.split()[1:] for line in lines}
        first, (done, received, *_) = float(stamps["first"][0]), stamps["done"]
        if int(received) != count:
            raise BenchError(f"{consumer.key}: received {received} of {count}")
        latencies = [float(x) for x in Path(latency_file[0]).read_text().split()] if rate else []
        span = (published if rate else first, float(done))
        return Run(count, (first - started) / 1000, count / max((float(done) - first) / 1000, 1e-9), peak,
                   sampler.cpu_between(*span) / count * 1e6, self.broker_cpu.cpu_between(*span) / count * 1e6,
                   latencies, publish_rate)

    def _run_bridge(self, consumer: Consumer, queue: str, count: int, rate: float | None, rundir: Path) -> Run:
        sink_dir = rundir / "sink"
        sink_dir.mkdir()
        sink = sink_dir / ("events.db" if consumer.sink == "sqlite" else "events.jsonl")
        if consumer.sink == "postgres":
            table = "bench_" + "".join(c if c.isalnum() else "_" for c in rundir.name).lower()
            prepare_postgres(self.pg_url, table)
            sink_config = {"type": "postgres", "url": "${" + PG_URL_VAR + "}", "table": table}
        else:
            table, sink_config = "events", {"type": consumer.sink, "path": str(sink)}
        sink_config.update(consumer.sink_options)
        config = write_bridge_config(rundir / "bridge.yaml", self.broker, consumer.transport, queue,
                                     f"bench-{consumer.slug}-{rundir.name}", sink_config)
        watch = SinkWatch(sink, consumer.sink, latencies=bool(rate), table=table, url=self.pg_url).start(count)
        log = rundir / "bridge.log"
        argv = [str(VENV_BIN / "amq-bridge"), "run", "-c", str(config), "--max-events", str(count),
                "--idle-timeout", "60"]
        started = now_ms()
        process = self.children.start(argv, log, stdout=subprocess.DEVNULL, cwd=rundir)
        sampler = ProcSampler(process.pid)
        publish_rate = None
        try:
            if rate:
                _wait_for_text(log, "subscribed to", 60, process)
                published = now_ms()
                publish_rate = self.produce(queue, count, rate, timeout=count / rate + 60)
            if not watch.wait(_consume_timeout(count), process):
                raise BenchError(f"{watch.count} of {count} events in the sink")
            status = process.wait(60)
        except (BenchError, subprocess.TimeoutExpired) as exc:
            raise BenchError(f"{consumer.key}: {exc}; {_tail(log)}") from None
        finally:
            peak = sampler.stop()
            self.children.stop(process)
            watch.stop()
        if status != 0:
            raise BenchError(f"{consumer.key}: exited with status {status}; {_tail(log)}")
        assert watch.first_ms is not None and watch.done_ms is not None
        span = (published if rate else watch.first_ms, watch.done_ms)
        return Run(count, (watch.first_ms - started) / 1000,
                   count / max((watch.done_ms - watch.first_ms) / 1000, 1e-9), peak,
                   sampler.cpu_between(*span) / count * 1e6, self.broker_cpu.cpu_between(*span) / count * 1e6,
                   watch.latencies or [], publish_rate)


def write_bridge_config(path: Path, broker: Broker, transport: str, queue: str, connection_id: str,
                        sink: dict[str, str]) -> Path:
    """A bridge config for the benchmark broker: config.yaml's defaults, no fallback."""
    doc = {
        "transport": transport,
        "fallback": [],  # a bench of openwire must not quietly measure stomp
        "profile": "atdata",
        "credentials": {"username": "${AMQ_USERNAME}", "password": "${AMQ_PASSWORD}"},
        "subscription": {"destination": f"queue:{queue}", "connection_id": connection_id},
        "openwire": {"urls": [broker.openwire_url], "jars_dir": str(ROOT / "jars")},
        "stomp": {"hosts": [broker.stomp_host]},
        "sink": sink,
        "dead_letter": str(path.with_name("dead-letter.jsonl")),
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def sqlite_sink_note() -> str | None:
    """None when the config accepts ``sink.type: sqlite`` and a sink of that name exists, else why not."""
    from bridge.config import parse_config
    from bridge.errors import ConfigError
    from bridge.sinks import SINKS

    doc = {"profile": "generic", "subscription": {"destination": "queue:x", "connection_id": "x"},
           "sink": {"type": "sqlite", "path": "/nonexistent/events.db"}}
    try:
        parse_config(doc)
    except ConfigError:
        return "n/a: sqlite sink not built yet"
    return None if "sqlite" in SINKS else "n/a: sqlite sink not built yet"


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _consume_timeout(count: int) -> float:
    """How long a consumer may take for ``count`` events: generous (500/s), but bounded."""
    return 120 + count / 500


def _wait_for_text(path: Path, text: str, timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        if process.poll() is not None:
            raise BenchError(f"exited (status {process.returncode}) before logging {text!r}")
        if time.monotonic() > deadline:
            raise BenchError(f"no {text!r} in its log within {timeout:.0f} s")
        time.sleep(0.02)


def _tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return "log: " + " | ".join(text[-lines:]) if text else "empty log"
