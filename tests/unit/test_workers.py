"""The workers supervisor over stand-in child processes (small Python scripts, no broker)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bridge import workers
from bridge.config import parse_config
from bridge.workers import Supervisor, numbered_path, worker_config


def make_config(tmp_path: Path, **extra):
    doc = {
        "profile": "generic",
        "subscription": {"destination": "queue:q", "connection_id": "c"},
        "sink": {"type": "jsonl", "path": str(tmp_path / "events.jsonl")},
        "dead_letter": str(tmp_path / "dead.jsonl"),
        "workers": 2,
        "reconnect": {"initial_delay": 0.05, "max_delay": 0.1},
        "shutdown_timeout": 1,
        **extra,
    }
    return parse_config(doc, env={})


def script(tmp_path: Path, body: str):
    """A worker command running ``body`` with ``I`` (the index) and ``STARTS`` (a per-index file)."""
    path = tmp_path / "child.py"
    path.write_text("import os, signal, sys, time\n"
                    "I = int(sys.argv[1])\n"
                    f"STARTS = os.path.join({str(tmp_path)!r}, f'starts-{{I}}')\n"
                    "with open(STARTS, 'a') as f: f.write('x')\n"
                    "N = len(open(STARTS).read())\n" + body)
    return lambda i: [sys.executable, str(path), str(i)]


def starts(tmp_path: Path, index: int) -> int:
    path = tmp_path / f"starts-{index}"
    return len(path.read_text()) if path.exists() else 0


def run(supervisor: Supervisor, timeout: float = 30) -> int:
    """``supervisor.run()`` with a bound: fails the test instead of hanging it."""
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(supervisor.run()), daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        supervisor.kill()
        pytest.fail(f"supervisor still running after {timeout} s")
    return result[0]


def test_numbered_path() -> None:
    assert numbered_path(Path("/d/events.jsonl"), 2) == Path("/d/events-2.jsonl")
    assert numbered_path(Path("/d/dead"), 1) == Path("/d/dead-1")


def test_worker_config_separates_ids_files_and_ports(tmp_path: Path) -> None:
    config = make_config(tmp_path, metrics={"port": 9100})
    second = worker_config(config, 2)
    assert second.subscription.connection_id == "c-2"
    assert second.subscription.destination == config.subscription.destination
    assert second.sink.path == tmp_path / "events-2.jsonl"
    assert second.dead_letter == tmp_path / "dead-2.jsonl"
    assert second.metrics.port == 9101
    assert worker_config(config, 1).metrics.port == 9100
    assert second.workers == 1


def test_worker_config_shares_databases_and_free_ports(tmp_path: Path) -> None:
    config = make_config(tmp_path, sink={"type": "sqlite", "path": str(tmp_path / "e.db")}, metrics={"port": 0})
    second = worker_config(config, 2)
    assert second.sink.path == tmp_path / "e.db"
    assert second.metrics.port == 0
    assert worker_config(make_config(tmp_path), 3).metrics.port is None


def test_workers_that_exit_0_are_finished_not_restarted(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, "bridge.workers")
    supervisor = Supervisor(make_config(tmp_path, workers=3), script(tmp_path, "sys.exit(0)\n"))
    assert run(supervisor) == 0
    assert [starts(tmp_path, i) for i in (1, 2, 3)] == [1, 1, 1]
    assert caplog.text.count("started (pid") == 3 and "all 3 workers finished" in caplog.text


def test_a_dead_worker_is_restarted_under_the_same_index(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, "bridge.workers")
    body = ("if I == 1 and N == 1: os.kill(os.getpid(), signal.SIGKILL)\n"
            "if I == 1 and N == 2: sys.exit(1)\n"
            "sys.exit(0)\n")
    assert run(Supervisor(make_config(tmp_path), script(tmp_path, body))) == 0
    assert starts(tmp_path, 1) == 3 and starts(tmp_path, 2) == 1
    assert "worker 1 killed by SIGKILL" in caplog.text and "worker 1 exited with status 1" in caplog.text
    assert caplog.text.count("worker 1 restarted (pid") == 2
    assert "connection id 'c-1'" in caplog.text


@pytest.mark.parametrize("status, expected", [(workers.FATAL_STATUS, 1), (workers.CONFIG_STATUS, 2)])
def test_a_fatal_exit_stops_everything(tmp_path: Path, caplog, status: int, expected: int) -> None:
    body = (f"if I == 2: time.sleep(0.3); sys.exit({status})\n"
            "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
            "time.sleep(60)\n")
    started = time.monotonic()
    assert run(Supervisor(make_config(tmp_path), script(tmp_path, body))) == expected
    assert time.monotonic() - started < 10
    assert starts(tmp_path, 2) == 1, "a fatal exit is not restarted"
    assert f"worker 2 exited with status {status}" in caplog.text and "stopping all workers" in caplog.text


def test_quick_exits_in_a_row_give_up(tmp_path: Path, caplog) -> None:
    body = "if I == 1: sys.exit(1)\nsys.exit(0)\n"
    assert run(Supervisor(make_config(tmp_path), script(tmp_path, body))) == 1
    assert starts(tmp_path, 1) == workers.QUICK_EXITS
    assert "times in a row; giving up" in caplog.text


def test_reconnect_max_attempts_bounds_restarts(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setattr(workers, "STARTUP_SECONDS", 0.0)
    config = make_config(tmp_path, reconnect={"initial_delay": 0.01, "max_delay": 0.02, "max_attempts": 2})
    assert run(Supervisor(config, script(tmp_path, "sys.exit(1 if I == 1 else 0)\n"))) == 1
    assert starts(tmp_path, 1) == 3
    assert "2 restarts in a row failed" in caplog.text


def test_stop_reaches_every_worker_once(tmp_path: Path) -> None:
    body = ("signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
            "time.sleep(60)\n")
    supervisor = Supervisor(make_config(tmp_path, workers=3), script(tmp_path, body))
    threading.Timer(1.0, supervisor.stop).start()
    assert run(supervisor) == 0
    assert [starts(tmp_path, i) for i in (1, 2, 3)] == [1, 1, 1]


def test_a_worker_that_ignores_the_stop_is_killed_after_the_timeout(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setattr(workers, "KILL_MARGIN", 0.2)
    body = ("signal.signal(signal.SIGTERM, signal.SIG_IGN if I == 2 else (lambda *a: sys.exit(0)))\n"
            "time.sleep(60)\n")
    supervisor = Supervisor(make_config(tmp_path), script(tmp_path, body))
    threading.Timer(1.0, supervisor.stop).start()
    started = time.monotonic()
    assert run(supervisor) == 130
    assert time.monotonic() - started < 10
    assert "worker 2 still running" in caplog.text and "worker 2 killed by SIGKILL" in caplog.text


def test_workers_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    """The parent-death signal: a worker whose parent is gone gets SIGTERM (Linux)."""
    pid_file = tmp_path / "pid"
    parent = subprocess.Popen([sys.executable, "-c", (
        "import os, subprocess, sys, time\n"
        "from bridge.workers import _die_with_parent\n"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " preexec_fn=_die_with_parent(os.getpid()))\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n")])
    try:
        deadline = time.monotonic() + 20
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(pid_file.read_text())
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the child outlived its killed parent"
    finally:
        parent.kill()
        parent.wait(10)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie or a missing process counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_a_second_signal_kills_every_worker_at_once(tmp_path: Path) -> None:
    """As ``amq-bridge run`` wires it: the first signal stops, the second kills all (status 130)."""
    pids = tmp_path / "pids"
    child = f"import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); " \
            f"open({str(pids)!r}, 'a').write(f'{{os.getpid()}} '); time.sleep(60)"
    main = tmp_path / "supervisor.py"
    main.write_text(
        "import sys\n"
        "from bridge.cli import _on_signals\n"
        "from bridge.config import parse_config\n"
        "from bridge.workers import Supervisor\n"
        "config = parse_config({'profile': 'generic', 'workers': 2, 'shutdown_timeout': 60,\n"
        "    'subscription': {'destination': 'queue:q', 'connection_id': 'c'}}, env={})\n"
        f"supervisor = Supervisor(config, lambda i: [sys.executable, '-c', {child!r}])\n"
        "_on_signals(supervisor.stop, before_exit=supervisor.kill)\n"
        "sys.exit(supervisor.run())\n")
    supervisor = subprocess.Popen([sys.executable, str(main)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while (not pids.exists() or len(pids.read_text().split()) < 2) and time.monotonic() < deadline:
            time.sleep(0.05)
        children = [int(p) for p in pids.read_text().split()]
        supervisor.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert supervisor.poll() is None, "workers ignoring SIGTERM keep the supervisor waiting"
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(10) == 130
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(p) for p in children)
        assert b"second signal" in supervisor.stderr.read()
    finally:
        if supervisor.poll() is None:
            os.kill(supervisor.pid, signal.SIGKILL)
        supervisor.wait(10)
        supervisor.stderr.close()


def test_a_worker_failing_while_stopping_makes_the_stop_unclean(tmp_path: Path) -> None:
    body = ("signal.signal(signal.SIGTERM, lambda *a: sys.exit(1 if I == 1 else 0))\n"
            "time.sleep(60)\n")
    supervisor = Supervisor(make_config(tmp_path), script(tmp_path, body))
    threading.Timer(1.0, supervisor.stop).start()
    assert run(supervisor) == 1


def test_worker_command_runs_this_bridge_as_worker_i(tmp_path: Path) -> None:
    command = workers.worker_command(Path("c.yaml"), 3, ["--idle-timeout", "5"])
    assert command[:4] == [sys.executable, "-m", "bridge", "run"]
    assert command[4:] == ["-c", str(Path("c.yaml").resolve()), "--worker", "3", "--idle-timeout", "5"]


def test_worker_log_lines_carry_the_worker_number(caplog) -> None:
    handler = logging.StreamHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        workers.tag_logs(2)
        record = logging.LogRecord("bridge.runner", logging.INFO, __file__, 1, "hello", None, None)
        handler.filter(record)
        handler.filter(record)
        assert record.name == "bridge.runner[worker-2]"
    finally:
        root.removeHandler(handler)


def test_each_worker_seeds_from_its_peers_files_and_covers_every_workers_prefetch(tmp_path: Path) -> None:
    from bridge.event import make_event
    from bridge.sinks.lines import event_lines

    config = make_config(tmp_path, workers=3, sink={"type": "jsonl", "path": str(tmp_path / "events.jsonl")},
                         dead_letter=str(tmp_path / "dead.jsonl"), dedupe_window=100)
    for i in (1, 2, 3):
        (tmp_path / f"events-{i}.jsonl").write_bytes(event_lines(
            [make_event(b"{}", 10, message_id=f"w{i}", destination="queue:q")]))
        (tmp_path / f"dead-{i}.jsonl").write_text(f'{{"reason": "x", "message_id": "d{i}"}}\n')
    assert sorted(i for source in workers.peer_sources(config, 2) for i in source(10)) == ["d1", "d3", "w1", "w3"]
    assert sorted(i for source in workers.peer_sources(config, 2, dead_letters=False) for i in source(10)) == [
        "w1", "w3"]
    assert worker_config(config, 2).dedupe_window == (1000 + 4 * config.batch_size) * 3  # each runs with workers: 1
