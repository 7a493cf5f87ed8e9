"""Child processes of the benchmark: the embedded broker, consumers, producers; all stopped at the end.

Every wait here is bounded, everything listens on 127.0.0.1 only, and :class:`Children` stops
whatever is still running when the benchmark ends (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import bisect
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Sequence

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
READY = re.compile(r"broker ready: openwire=(?P<openwire>\S+) stomp=stomp://(?P<stomp>\S+)")


class BenchError(Exception):
    """Something the benchmark needs failed; the message says what."""


def now_ms() -> float:
    """Wall-clock milliseconds: the clock of JMSTimestamp and of the STOMP ``timestamp`` header."""
    return time.time_ns() / 1e6


class Children:
    """Starts child processes and stops every one still running at :meth:`stop_all`."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, argv: Sequence[str], stderr: Path, *, stdout: int | IO[bytes] = subprocess.PIPE,
              cwd: Path | None = None) -> subprocess.Popen[bytes]:
        with open(stderr, "ab") as err:
            process = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=stdout, stderr=err,
                                       env=self.env, cwd=cwd)
        self.running.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 10) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns the exit status."""
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
        status = process.wait(10)
        if process in self.running:
            self.running.remove(process)
        if process.stdout is not None:
            process.stdout.close()
        return status

    def stop_all(self) -> None:
        for process in reversed(list(self.running)):  # consumers first, the broker last
            self.stop(process)


class LineReader:
    """Reads a child's stdout line by line without blocking past a deadline."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        self.process, self.fd = process, process.stdout.fileno()
        self.lines: list[str] = []  # read but not yet returned
        self._buffer = b""

    def until(self, prefix: str, timeout: float) -> list[str]:
        """Lines up to and including the first starting with ``prefix``.

        Raises:
            BenchError: The process exited or ``timeout`` seconds passed first.
        """
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.fd, selectors.EVENT_READ)
            while True:
                for index, line in enumerate(self.lines):
                    if line.startswith(prefix):
                        found, self.lines = self.lines[:index + 1], self.lines[index + 1:]
                        return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"no {prefix!r} line within {timeout:.0f} s")
                if selector.select(min(left, 1.0)):
                    chunk = os.read(self.fd, 65536)
                    if not chunk:
                        raise BenchError(f"exited (status {self.process.wait(10)}) before {prefix!r}")
                    *complete, self._buffer = (self._buffer + chunk).split(b"\n")
                    self.lines += [line.decode(errors="replace") for line in complete]


class ProcSampler:
    """Follows a process in /proc every 0.05 s: its peak resident memory and its CPU time.

    Peak memory is VmHWM of /proc/PID/status, the kernel's own high-water mark of VmRSS, so the
    interval only matters for the last 0.05 s before the process exits. CPU time is utime + stime
    of /proc/PID/stat (10 ms ticks), kept with the wall-clock time of each sample so that the CPU
    spent between two moments (first and last event) can be read back with :meth:`cpu_between`.
    """

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb = pid, 0
        self.samples: list[tuple[float, float]] = []  # (wall-clock ms, CPU seconds), in time order
        self._tick = os.sysconf("SC_CLK_TCK")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"proc-{pid}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with open(f"/proc/{self.pid}/stat") as stat:
                    fields = stat.read().rpartition(")")[2].split()
                with open(f"/proc/{self.pid}/status") as status:
                    for line in status:
                        if line.startswith("VmHWM:"):
                            self.peak_kb = max(self.peak_kb, int(line.split()[1]))
                            break
            except (OSError, ValueError):
                return
            if fields[0] == "Z":  # exited, not yet reaped: its counters are final but Vm* are gone
                return
            self.samples.append((now_ms(), (int(fields[11]) + int(fields[12])) / self._tick))
            self._stop.wait(0.05)

    def stop(self) -> float:
        """Stop sampling; returns the peak resident memory in MiB."""
        self._stop.set()
        self._thread.join(2)
        return self.peak_kb / 1024

    def cpu_between(self, start_ms: float, end_ms: float) -> float:
        """CPU seconds the process used between two wall-clock moments (interpolated samples)."""
        return self._cpu_at(end_ms) - self._cpu_at(start_ms)

    def _cpu_at(self, when: float) -> float:
        samples = list(self.samples)
        if not samples:
            return 0.0
        index = bisect.bisect_left(samples, (when,))
        if index == 0:
            return samples[0][1]
        if index == len(samples):
            return samples[-1][1]
        (t0, c0), (t1, c1) = samples[index - 1], samples[index]
        return c0 + (c1 - c0) * (when - t0) / max(t1 - t0, 1e-9)


@dataclass
class Broker:
    """A running ``amq-bridge broker``."""

    openwire_url: str
    stomp_host: str
    process: subprocess.Popen[bytes]


def start_broker(children: Children, config: Path, workdir: Path, persistent: bool) -> Broker:
    """``amq-bridge broker -c CONFIG`` on free loopback ports, KahaDB under ``workdir`` if persistent."""
    argv = [str(VENV_BIN / "amq-bridge"), "broker", "-c", str(config), "--host", "127.0.0.1",
            "--openwire-port", "0", "--stomp-port", "0"]
    if persistent:
        argv += ["--persistent", "--data-dir", str(workdir / "broker-data")]
    process = children.start(argv, workdir / "broker.log", cwd=workdir)
    try:
        line = LineReader(process).until("broker ready", timeout=90)[-1]
    except BenchError as exc:
        log = (workdir / "broker.log").read_text(errors="replace")[-2000:]
        raise BenchError(f"broker did not start: {exc}\n{log}") from None
    match = READY.search(line)
    if match is None:
        raise BenchError(f"unexpected broker line: {line!r}")
    return Broker(match["openwire"], match["stomp"], process)


def compile_java(build_dir: Path, classpath: Sequence[str]) -> None:
    """Compile JmsBench.java into ``build_dir`` with javac."""
    javac = shutil.which("javac")
    if javac is None:
        raise BenchError("javac not found: the plain Java JMS consumer and the producer need a JDK "
                         "(Debian: apt-get install default-jdk-headless; scripts/setup installs it)")
    build_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([javac, "-nowarn", "-d", str(build_dir), "-cp", os.pathsep.join(classpath),
                             str(HERE / "JmsBench.java")], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise BenchError(f"javac failed:\n{result.stderr}")


def command_version(argv: Sequence[str]) -> str:
    """The first line a ``--version``-like command prints (on stdout or stderr), or ``?``."""
    try:
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (result.stdout + result.stderr).strip()
    return text.splitlines()[0] if text else "?"
