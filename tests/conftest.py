"""Shared fixtures: a real ActiveMQ broker in a child process, and bridge processes around it.

Everything listens on 127.0.0.1, on ports the broker picks itself, and every process a test
starts is stopped when the test ends.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from tests.pgserver import PgServer, find_bindir

ROOT = Path(__file__).resolve().parent.parent
USERNAME = "12345"
PASSWORD = secrets.token_hex(16)
READY = re.compile(r"broker ready: openwire=(?P<openwire>\S+) stomp=stomp://(?P<host>[^:\s]+):(?P<port>\d+)")
TRANSPORTS = ["openwire", "stomp"]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of every child: the test credentials, unbuffered Python."""
    return {**os.environ, "AMQ_USERNAME": USERNAME, "AMQ_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1", **extra}


def bridge_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bridge", *args]


@dataclass
class Broker:
    """A running broker: where to reach it over each protocol."""

    openwire_url: str
    stomp_host: str
    process: subprocess.Popen[bytes]
    log: Path


def start_broker(workdir: Path, *extra: str) -> Broker:
    """Start ``amq-bridge broker`` on free loopback ports with the test credentials."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = write_config(workdir / "broker.yaml", namespace="brokerdefault", destination_id="0",
                          connection_id="broker")
    log = workdir / "broker.log"
    with open(log, "wb") as err:
        process = subprocess.Popen(
            bridge_command("broker", "-c", str(config), "--openwire-port", "0", "--stomp-port", "0", *extra),
            stdout=subprocess.PIPE, stderr=err, env=child_env(), cwd=workdir,
        )
    deadline = time.monotonic() + 60
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    match = READY.search(line)
    if not match or time.monotonic() > deadline:
        stop_process(process)
        raise RuntimeError(f"broker did not start: {line!r}\n{log.read_text()}")
    return Broker(match["openwire"], f"{match['host']}:{match['port']}", process, log)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15) -> int:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout``; returns the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait(10)


@pytest.fixture(scope="session", autouse=True)
def no_stale_jvm_attach_sockets() -> Iterator[None]:
    """A JVM started with -Xrs (the bridge's and the broker's) opens its attach socket
    /tmp/.java_pid<pid> at start and removes it when it exits; one killed with -9 leaves it behind.
    Those of this session's JVMs that are gone are removed at the end."""
    attach_dir = Path("/tmp")
    before = set(attach_dir.glob(".java_pid*"))
    yield
    for path in set(attach_dir.glob(".java_pid*")) - before:
        pid = path.name.removeprefix(".java_pid")
        if pid.isdigit() and not Path("/proc", pid).exists():
            path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    """A PostgreSQL server for the session (missing: fail under CI=true, else skip)."""
    bindir = find_bindir()
    try:
        import psycopg  # noqa: F401
    except ImportError:
        bindir, why = None, "psycopg is not installed (pip install -e '.[test]')"
    else:
        why = "PostgreSQL is not installed (apt-get install postgresql; scripts/test does it)"
    if bindir is None:
        if os.environ.get("CI") == "true":
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    server = PgServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker for the whole session; tests isolate themselves by namespace."""
    running = start_broker(tmp_path_factory.mktemp("broker"))
    try:
        yield running
    finally:
        stop_process(running.process)


_counter = iter(range(1, 1_000_000))


@pytest.fixture
def namespace() -> str:
    """A feed namespace of this test's own, so no two tests share events."""
    return f"ns{os.getpid()}x{next(_counter)}"


def write_config(path: Path, *, broker: Broker | None = None, transport: str = "stomp",
                 namespace: str = "acme", destination_id: str = "1", connection_id: str = "bridge-1",
                 sink: Path | dict[str, Any] | None = None, **overrides: Any) -> Path:
    """Write a config file for the test broker; ``overrides`` replace top-level keys or sections.

    ``sink`` is the path of a jsonl sink (default: beside the config), or a whole ``sink`` section.
    """
    doc: dict[str, Any] = {
        "transport": transport,
        "profile": "atdata",
        "connect_timeout": 10,
        "credentials": {"username": "${AMQ_USERNAME}", "password": "${AMQ_PASSWORD}"},
        "subscription": {"namespace": namespace, "destination_id": destination_id,
                         "connection_id": connection_id},
        "sink": sink if isinstance(sink, dict) else {"type": "jsonl",
                                                     "path": str(sink or path.with_suffix(".events.jsonl"))},
        "dead_letter": str(path.with_suffix(".dead.jsonl")),
        "stats_interval": 1,
    }
    if broker is not None:
        doc["openwire"] = {"urls": [broker.openwire_url], "jars_dir": str(ROOT / "jars")}
        doc["stomp"] = {"hosts": [broker.stomp_host]}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@dataclass
class Bridge:
    """A running ``amq-bridge run`` process."""

    process: subprocess.Popen[bytes]
    stderr_path: Path
    config: Path
    sink: Path = field(default=Path())

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 60) -> None:
        """Wait until ``text`` appears on the bridge's stderr."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.stderr:
                return
            if self.process.poll() is not None:
                raise AssertionError(f"bridge exited ({self.process.returncode}) before {text!r}:\n{self.stderr}")
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} within {timeout}s:\n{self.stderr}")

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"bridge still running after {timeout}s:\n{self.stderr}") from None

    def events(self) -> list[dict[str, Any]]:
        return read_jsonl(self.sink)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    """Start bridge processes (``spawn(config, *args, **env)``); all are stopped when the test ends."""
    started: list[subprocess.Popen[bytes]] = []

    def start(config: Path, *args: str, command: str = "run", **env: str) -> Bridge:
        stderr_path = tmp_path / f"bridge-{len(started)}.stderr"
        with open(stderr_path, "wb") as err:
            process = subprocess.Popen(bridge_command(command, "-c", str(config), *args),
                                       stdout=subprocess.DEVNULL, stderr=err, env=child_env(**env), cwd=tmp_path)
        started.append(process)
        sink = Path(yaml.safe_load(config.read_text()).get("sink", {}).get("path", ""))
        return Bridge(process, stderr_path, config, sink)

    yield start
    for process in started:
        stop_process(process, timeout=10)


def publish(config: Path, count: int, *, start: int = 0, transport: str = "stomp", extra: tuple[str, ...] = ()) -> None:
    """Publish ``count`` generated events through ``amq-bridge publish``."""
    result = subprocess.run(
        bridge_command("publish", "-c", str(config), "--transport", transport, "--count", str(count),
                       "--start", str(start), *extra),
        env=child_env(), capture_output=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()
