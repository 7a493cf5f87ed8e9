"""Processes the fault tests start and break: a persistent broker, bridges, publishers.

Everything runs on 127.0.0.1. The broker keeps its ports and data directory across restarts,
so a bridge (or the proxy in front of it) finds it again where it was.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Sequence

import yaml

from tests.conftest import READY, ROOT, bridge_command, child_env, stop_process, write_config
from tests.faults.checker import count_lines, read_records, tally

#: Log lines worth showing when a test fails (the rest is stats and connection chatter).
NOTABLE = re.compile(r" (WARNING|ERROR|CRITICAL) |amq-bridge: |Traceback|Error|subscribed to")


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports, chosen once so that restarts can reuse them."""
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    try:
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05,
               alive: "BridgeProcess | None" = None) -> bool:
    """Poll ``predicate`` until true (True) or ``timeout`` (False); stop early if ``alive`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline or (alive is not None and alive.process.poll() is not None):
            return False
        time.sleep(interval)


def time_to_growth(path: Path, baseline: int, timeout: float, alive: "BridgeProcess | None" = None,
                   since: float | None = None) -> float | None:
    """Seconds from ``since`` (default: now, a ``time.monotonic()`` value) until ``path`` has more
    lines than ``baseline``, or None if it did not grow within ``timeout``."""
    started = time.monotonic() if since is None else since
    if wait_until(lambda: count_lines(path) > baseline, timeout, 0.02, alive):
        return time.monotonic() - started
    return None


class FaultBroker:
    """``amq-bridge broker --persistent`` in a child process, on fixed ports and a fixed data dir.

    Its config pre-creates the consumer queue ``1.RTO.<namespace>``, so events published before
    any bridge connected are kept for it.
    """

    def __init__(self, workdir: Path, namespace: str, *, data_dir: Path | None = None,
                 shared_store: bool = False) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir, self.namespace, self.shared_store = workdir, namespace, shared_store
        self.openwire_port, self.stomp_port = free_ports(2)
        self.data_dir = data_dir or workdir / "data"
        self.log = workdir / "broker.log"
        self.config = write_config(
            workdir / "broker.yaml", namespace=namespace, destination_id="1", connection_id="fault-broker",
            openwire={"urls": [self.openwire_url], "jars_dir": str(ROOT / "jars")},
            stomp={"hosts": [self.stomp_host]})
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def openwire_url(self) -> str:
        return f"tcp://127.0.0.1:{self.openwire_port}"

    @property
    def stomp_host(self) -> str:
        return f"127.0.0.1:{self.stomp_port}"

    def start(self, timeout: float = 60, *, wait: bool = True) -> None:
        """Start the broker and wait for its ready line (``wait=False``: see :meth:`wait_ready`)."""
        assert self.process is None or self.process.poll() is not None, "broker already running"
        store = ["--shared-store"] if self.shared_store else []
        with open(self.log, "ab") as err:
            self.process = subprocess.Popen(
                bridge_command("broker", "-c", str(self.config), "--persistent", "--data-dir", str(self.data_dir),
                               *store, "--openwire-port", str(self.openwire_port),
                               "--stomp-port", str(self.stomp_port)),
                stdout=subprocess.PIPE, stderr=err, env=child_env(), cwd=self.workdir)
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait for the ready line of the broker started last (a slave prints it once it took over)."""
        assert self.process is not None and self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout)
        line = self.process.stdout.readline().decode() if ready else ""
        if not READY.search(line):
            self.kill()
            raise RuntimeError(f"broker did not start: {line!r}\n{self.log.read_text(errors='replace')[-3000:]}")

    def stop(self) -> int | None:
        """SIGTERM (a clean stop: KahaDB closed), SIGKILL after 20 s; returns the exit status."""
        if self.process is None:
            return None
        return stop_process(self.process, timeout=20)

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop cleanly, stay down ``down_seconds``, start again on the same ports and data."""
        self.stop()
        time.sleep(down_seconds)
        self.start()


@dataclass
class BridgeProcess:
    """One ``amq-bridge run`` process and its stderr file."""

    process: subprocess.Popen[bytes]
    stderr_path: Path
    config: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def wait_for(self, pattern: str, timeout: float = 60, since: int = 0) -> bool:
        """Whether ``pattern`` (a regex) appears in stderr after offset ``since`` within ``timeout``."""
        regex = re.compile(pattern)
        return wait_until(lambda: regex.search(self.stderr, since) is not None, timeout, 0.05)

    def kill9(self) -> None:
        """SIGKILL, as a crash: nothing in hand is acknowledged."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM (a graceful stop) and wait; SIGKILL after ``timeout``."""
        return stop_process(self.process, timeout=timeout)

    def notable(self, lines: int = 40) -> str:
        """The last warnings, errors and key lines of stderr, for assertion messages."""
        picked = [line for line in self.stderr.splitlines() if NOTABLE.search(line)]
        return f"--- {self.stderr_path.name} (exit {self.process.poll()}) ---\n" + "\n".join(picked[-lines:])


class Processes:
    """Starts bridges and publishers for one test; :meth:`stop_all` ends whatever still runs."""

    def __init__(self, workdir: Path, **env: str) -> None:
        self.workdir = workdir
        self.env = child_env(PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                             **env)
        self.started: list[subprocess.Popen[bytes]] = []
        self.bridges: list[BridgeProcess] = []

    def bridge(self, config: Path, *args: str, name: str = "bridge") -> BridgeProcess:
        """Start ``amq-bridge run -c config``; stderr goes to ``<name>-<n>.stderr``."""
        stderr_path = self.workdir / f"{name}-{len(self.bridges)}.stderr"
        with open(stderr_path, "wb") as err:
            process = subprocess.Popen(bridge_command("run", "-c", str(config), *args), stdout=subprocess.DEVNULL,
                                       stderr=err, env=self.env, cwd=self.workdir)
        self.started.append(process)
        self.bridges.append(BridgeProcess(process, stderr_path, config))
        return self.bridges[-1]

    def publisher(self, broker: "FaultBroker", count: int, *, start: int = 0,
                  rate: float | None = None) -> subprocess.Popen[bytes]:
        """Start a confirmed STOMP sender (:mod:`tests.faults.sender`) of events ``start`` ..
        ``start+count-1`` to topic ``RTO.<namespace>`` in the background."""
        command = [sys.executable, "-m", "tests.faults.sender", str(broker.stomp_port), broker.namespace,
                   str(start), str(count), *([str(rate)] if rate else [])]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self.env,
                                   cwd=self.workdir)
        self.started.append(process)
        return process

    def publish(self, broker: "FaultBroker", count: int, *, start: int = 0, processes: int = 1,
                timeout: float = 240) -> None:
        """Publish events ``start`` .. ``start+count-1`` from ``processes`` senders at once and wait
        until the broker has confirmed all of them; fails the test otherwise."""
        share = -(-count // processes)
        senders = [self.publisher(broker, min(share, count - first), start=start + first)
                   for first in range(0, count, share)]
        for sender in senders:
            finish(sender, timeout)

    def run(self, *args: str, timeout: float = 60) -> None:
        """Run ``python ARGS`` in the test environment and wait; fails the test if it fails."""
        result = subprocess.run([sys.executable, *args], env=self.env, cwd=self.workdir, capture_output=True,
                                timeout=timeout)
        assert result.returncode == 0, f"{args} failed:\n{result.stderr.decode(errors='replace')[-3000:]}"

    def stop_all(self) -> None:
        for process in reversed(self.started):
            stop_process(process, timeout=10)


def finish(publisher: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Wait for a background publisher; fails the test if it failed."""
    try:
        _, err = publisher.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        publisher.kill()
        raise AssertionError(f"publisher still running after {timeout}s") from None
    assert publisher.returncode == 0, f"publisher failed ({publisher.returncode}):\n{err.decode(errors='replace')}"


def bridge_config(path: Path, broker: FaultBroker, transport: str, *, openwire_url: str | None = None,
                  stomp_host: str | None = None, **overrides: Any) -> Path:
    """A bridge config for ``broker`` (or for a proxy in front of it) with fast reconnects."""
    defaults: dict[str, Any] = {
        "connect_timeout": 5,
        "reconnect": {"initial_delay": 0.2, "max_delay": 1.0},
        "stats_interval": 1,
    }
    openwire = {"urls": [openwire_url or broker.openwire_url], "jars_dir": str(ROOT / "jars"),
                **overrides.pop("openwire", {})}
    stomp = {"hosts": [stomp_host or broker.stomp_host], **overrides.pop("stomp", {})}
    sink = overrides.pop("sink", None)  # write_config's own ``sink`` parameter is a path
    write_config(path, transport=transport, namespace=broker.namespace, destination_id="1",
                 connection_id=overrides.pop("connection_id", "fault-bridge"),
                 openwire=openwire, stomp=stomp, **{**defaults, **overrides})
    if sink is not None:
        doc = yaml.safe_load(path.read_text())
        doc["sink"] = sink
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class SinkView:
    """What a sink holds, read as the checker reads a jsonl file: records with ``message_id`` and
    ``data``. ``jsonl`` (with ``workers`` > 1: every worker's numbered file), ``sqlite`` (the file
    at ``path``) or ``postgres`` (``url``); ``table`` for the stores."""

    def __init__(self, kind: str, *, path: Path | None = None, url: str = "", table: str = "events",
                 workers: int = 1) -> None:
        self.kind, self.path, self.url, self.table, self.workers = kind, path, url, table, workers

    def sink(self) -> dict[str, Any]:
        """The ``sink`` section of a bridge config writing here (postgres: url from $AMQ_TEST_PG_URL)."""
        if self.kind == "jsonl":
            return {"type": "jsonl", "path": str(self.path)}
        if self.kind == "sqlite":
            return {"type": "sqlite", "path": str(self.path), "table": self.table}
        return {"type": "postgres", "url": "${AMQ_TEST_PG_URL}", "table": self.table}

    @property
    def files(self) -> list[Path]:
        """The jsonl files: one, or each worker's."""
        assert self.path is not None
        if self.workers == 1:
            return [self.path]
        return [self.path.with_name(f"{self.path.stem}-{i}{self.path.suffix}") for i in range(1, self.workers + 1)]

    def records(self) -> tuple[list[dict[str, Any]], int]:
        if self.kind == "jsonl":
            records, torn = [], 0
            for path in self.files:
                found, bad = read_records(path)
                records += found
                torn += bad
            return records, torn
        return [{"message_id": m, "data": d} for m, d in self._rows("message_id, payload")], 0

    def count(self) -> int:
        """How many events it holds (cheap enough to poll)."""
        if self.kind == "jsonl":
            return sum(count_lines(p) for p in self.files)
        rows = self._rows("count(*)")
        return int(rows[0][0]) if rows else 0

    def _rows(self, columns: str) -> list[tuple[Any, ...]]:
        if self.kind == "sqlite":
            import sqlite3

            assert self.path is not None
            if not self.path.exists():
                return []
            db = sqlite3.connect(self.path, timeout=10)
            try:
                found = db.execute(f"SELECT {columns} FROM {self.table} ORDER BY rowid").fetchall()
            except sqlite3.OperationalError:  # no table yet
                return []
            finally:
                db.close()
            return [tuple(json.loads(v) if isinstance(v, str) and v.startswith("{") else v for v in row)
                    for row in found]
        import psycopg

        with psycopg.connect(self.url, connect_timeout=5) as db:
            if db.execute("SELECT to_regclass(%s)", (self.table,)).fetchone()[0] is None:
                return []
            return db.execute(f"SELECT {columns} FROM {self.table}").fetchall()


def paths_of(config: Path) -> tuple[Path | None, Path | None]:
    """The sink file (jsonl sinks) and dead-letter file a config names."""
    doc = yaml.safe_load(config.read_text())
    sink = doc.get("sink", {}).get("path")
    dead = doc.get("dead_letter")
    return (Path(sink) if sink else None), (Path(dead) if dead else None)


class RssSampler:
    """Samples a process's resident memory (VmRSS) every ``interval`` seconds on a thread."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []  # (monotonic time, kB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            kb = rss_kb(self.pid)
            if kb is None:
                return
            self.samples.append((time.monotonic(), kb))
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    @property
    def max_mb(self) -> float:
        return max((kb for _, kb in self.samples), default=0) / 1024


def rss_kb(pid: int) -> int | None:
    """VmRSS of ``pid`` in kB, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def wait_drained(seqs: Collection[int], sinks: Sequence[Path | SinkView], dead_letters: Sequence[Path | None] = (),
                 bad_kinds: Collection[str] = (), timeout: float = 60, alive: BridgeProcess | None = None) -> bool:
    """Wait until every published item is in a sink or dead-letter file (True), or give up (False)."""
    expected = len(seqs) + len(bad_kinds)
    files = [p for p in [*sinks, *dead_letters] if p is not None]

    def drained() -> bool:
        if sum(p.count() if isinstance(p, SinkView) else count_lines(p) for p in files) < expected:
            return False
        return tally(seqs, sinks, dead_letters, bad_kinds).lost == 0

    return wait_until(drained, timeout, 0.5, alive)


def explain(result: Any, *bridges: BridgeProcess, note: str = "") -> str:
    """An assertion message: the figures, then what each bridge said that matters."""
    parts = [note, result.summary() if hasattr(result, "summary") else str(result)]
    parts += [bridge.notable() for bridge in bridges]
    return "\n".join(filter(None, parts))



def drain_queue(broker: FaultBroker, queue: str, idle: float = 2.0, timeout: float = 30) -> int:
    """Consume ``queue`` on ``broker`` with a plain stomp.py client (auto ack) until it has been
    quiet for ``idle`` seconds; returns how many messages were left on it."""
    import stomp

    from tests.conftest import PASSWORD, USERNAME

    class Counter(stomp.ConnectionListener):
        def __init__(self) -> None:
            self.count, self.last = 0, time.monotonic()

        def on_message(self, frame: Any) -> None:
            self.count, self.last = self.count + 1, time.monotonic()

    conn = stomp.Connection12([("127.0.0.1", broker.stomp_port)], heartbeats=(0, 0))
    counter = Counter()
    conn.set_listener("drain", counter)
    conn.connect(USERNAME, PASSWORD, wait=True, headers={"client-id": "fault-drain"})
    try:
        conn.subscribe(f"/queue/{queue}", "drain", ack="auto")
        deadline = time.monotonic() + timeout
        while time.monotonic() - counter.last < idle and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        conn.disconnect()
    return counter.count
