"""Several consumer processes on one subscription: ``workers: N`` in the configuration.

With ``workers`` above 1, ``amq-bridge run`` becomes a supervisor of N child processes, each an
ordinary single-process run (its own interpreter and JVM, so the load spreads over the cores).
The broker shares the queue between them because each connects under a client id of its own.

Worker ``i`` (1..N) differs from the configuration in what must not be shared:

* connection id ``<subscription.connection_id>-<i>``, the same for ``i`` after every restart;
* the ``jsonl`` sink file and the ``dead_letter`` file: ``<stem>-<i><suffix>``
  (``events.jsonl`` -> ``events-1.jsonl``), so no file has two writers;
* the metrics port: ``metrics.port + i - 1`` (port 0 stays 0: each worker picks a free one).

The ``sqlite`` and ``postgres`` sinks, ``stdout`` and a ``handler`` are shared by all workers.

The broker may hand a worker's unacknowledged events to another one when it dies, so each
worker seeds its de-duplication window from its peers' ``jsonl`` and dead-letter files too
(:func:`peer_sources`), and its window covers every worker's prefetch (``dedupe_window`` of
the worker's configuration is :func:`bridge.dedupe.window_size` of the whole one).

The supervisor starts worker ``i`` as ``python -m bridge run -c CONFIG --worker i``, in a session
of its own (a Ctrl-C reaches the supervisor only, which passes it on once), and with the parent-
death signal set to SIGTERM (Linux), so workers never outlive a supervisor that was killed. It

* restarts a worker that died (non-zero status or a signal) after a backoff of ``reconnect``,
  with one log line per exit and per start; a worker that exits 0 (``--max-events``,
  ``--idle-timeout``) is finished and not restarted, and when all are finished the run ends;
* stops everything and exits non-zero when a worker exits with :data:`CONFIG_STATUS` or
  :data:`FATAL_STATUS` (credentials refused, no usable transport), when a worker dies within
  :data:`STARTUP_SECONDS` of its start :data:`QUICK_EXITS` times in a row, or when
  ``reconnect.max_attempts`` restarts in a row have failed;
* on :meth:`Supervisor.stop` (the first SIGINT/SIGTERM) sends SIGTERM to every worker, which
  finishes and acknowledges its batch, and kills those still running ``shutdown_timeout`` (plus
  :data:`KILL_MARGIN`) later; on :meth:`Supervisor.kill` (a second signal) kills all at once.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from bridge.backoff import Backoff
from bridge.config import BridgeConfig
from bridge.dedupe import IdSource, window_size

log = logging.getLogger(__name__)

#: Exit status of a worker whose configuration is invalid (as ``amq-bridge run``).
CONFIG_STATUS = 2
#: Exit status of a worker that met an error no restart can fix (see ``bridge.runner.FATAL``).
FATAL_STATUS = 3
#: A worker that dies this soon after its start has a "quick exit".
STARTUP_SECONDS = 5.0
#: Quick exits in a row after which the supervisor gives up.
QUICK_EXITS = 5
#: A worker that ran this long before dying is restarted from the initial delay again.
STEADY_SECONDS = 60.0
#: Seconds after ``shutdown_timeout`` before workers still running are killed (each worker's
#: own timer ends it at ``shutdown_timeout``; this leaves room for that to happen first).
KILL_MARGIN = 2.0
#: How often the supervisor looks at its workers.
POLL_SECONDS = 0.1

_PR_SET_PDEATHSIG = 1


def numbered_path(path: Path, index: int) -> Path:
    """``path`` with ``-<index>`` before its suffix: ``events.jsonl`` -> ``events-2.jsonl``."""
    return path.with_name(f"{path.stem}-{index}{path.suffix}")


def worker_config(config: BridgeConfig, index: int) -> BridgeConfig:
    """The configuration of worker ``index`` (1..N): its own connection id, files and port."""
    subscription = config.subscription.model_copy(
        update={"connection_id": f"{config.subscription.connection_id}-{index}"})
    sink = config.sink
    if sink.type == "jsonl" and sink.path is not None:
        sink = sink.model_copy(update={"path": numbered_path(sink.path, index)})
    metrics = config.metrics
    if metrics.port:
        metrics = metrics.model_copy(update={"port": metrics.port + index - 1})
    dead_letter = numbered_path(config.dead_letter, index) if config.dead_letter is not None else None
    return config.model_copy(update={"subscription": subscription, "sink": sink, "metrics": metrics,
                                     "dead_letter": dead_letter, "dedupe_window": window_size(config),
                                     "workers": 1})


def peer_sources(config: BridgeConfig, index: int, *, dead_letters: bool = True) -> list[IdSource]:
    """Readers of the newest message ids in the files of every worker but ``index``: their
    ``jsonl`` files (with the rotated ones) and, unless ``dead_letters`` is false, their
    dead-letter files. The stores (sqlite, postgres) are shared, so the worker's own sink covers
    its peers there."""
    from bridge.deadletter import DeadLetterFile
    from bridge.sinks.lines import jsonl_recent_ids

    sources: list[IdSource] = []
    for peer in range(1, config.workers + 1):
        if peer == index:
            continue
        peer_config = worker_config(config, peer)
        if config.sink.type == "jsonl" and peer_config.sink.path is not None:
            sources.append(functools.partial(jsonl_recent_ids, peer_config.sink.path))
        if dead_letters and peer_config.dead_letter is not None:
            sources.append(DeadLetterFile(peer_config.dead_letter).recent_ids)
    return sources


def tag_logs(index: int) -> None:
    """Mark every log line of this process as worker ``index``'s (workers share one stderr)."""
    class Tag(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if not record.name.endswith("]"):
                record.name = f"{record.name}[worker-{index}]"
            return True

    for handler in logging.getLogger().handlers:
        handler.addFilter(Tag())


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child sent SIGTERM when ``parent`` dies (Linux's prctl
    PR_SET_PDEATHSIG); ``None`` where there is no prctl."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)
    return arm


@dataclasses.dataclass
class _Worker:
    """One worker slot: the process in it now and its restart history."""

    index: int
    backoff: Backoff
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restart_at: float | None = None
    quick_exits: int = 0
    starts: int = 0
    finished: bool = False
    signalled: bool = False
    killed: bool = False


class Supervisor:
    """Run ``config.workers`` worker processes until they finish, fail for good, or are stopped.

    Args:
        config: The configuration (``workers`` is the number of processes).
        command: The command line of worker ``i``; see :func:`worker_command`.
        env: The environment of the workers (default: this process's).
    """

    def __init__(self, config: BridgeConfig, command: Callable[[int], Sequence[str]],
                 env: dict[str, str] | None = None) -> None:
        self.config = config
        self.command = command
        self.env = env
        self.workers = [_Worker(i, Backoff(config.reconnect)) for i in range(1, config.workers + 1)]
        self._stop_requested = False
        self._stopping_since: float | None = None
        self._failure: int | None = None
        #: Workers that did not stop cleanly after a stop request: killed or forced (130), or failed.
        self._forced = self._unclean = False

    def stop(self) -> None:
        """Stop every worker gracefully; safe from signal handlers and other threads."""
        self._stop_requested = True

    def kill(self) -> None:
        """SIGKILL every worker at once (a second signal)."""
        for worker in self.workers:
            if worker.process is not None and worker.process.returncode is None:
                try:
                    worker.process.kill()
                except OSError:
                    pass

    def run(self) -> int:
        """Supervise until done; returns the exit status of ``amq-bridge run``.

        0: every worker finished, or stopped cleanly after :meth:`stop`; 130: a stop that had to
        kill or force a worker; 2: a worker's configuration is invalid; 1: a worker failed in a
        way restarts cannot fix, or exited non-zero while stopping.
        """
        sub = self.config.subscription
        log.info("starting %d workers on %s (connection ids %s-1..%s-%d)", len(self.workers),
                 sub.destination, sub.connection_id, sub.connection_id, len(self.workers))
        for worker in self.workers:
            if not self._stop_requested and self._stopping_since is None:
                self._start(worker, time.monotonic())
        while True:
            now = time.monotonic()
            if self._stop_requested and self._stopping_since is None:
                self._begin_stop(now, "stop requested; stopping all workers")
            for worker in self.workers:
                self._check(worker, now)
            if self._stopping_since is None:
                for worker in self.workers:
                    if worker.restart_at is not None and now >= worker.restart_at:
                        self._start(worker, now)
            else:
                self._forward_stop(now)
            if all(w.process is None and w.restart_at is None for w in self.workers):
                break
            time.sleep(POLL_SECONDS)
        return self._status()

    def _start(self, worker: _Worker, now: float) -> None:
        worker.restart_at = None
        worker.signalled = worker.killed = False
        try:
            # A session of its own: a Ctrl-C at a terminal reaches the supervisor only.
            worker.process = subprocess.Popen(
                list(self.command(worker.index)), env=self.env, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_die_with_parent(os.getpid()),
            )
        except OSError as exc:
            self._fail(1, now, f"cannot start worker {worker.index}: {exc}; stopping all workers")
            return
        worker.started = time.monotonic()
        worker.starts += 1
        log.info("worker %d %s (pid %d, connection id %r)", worker.index,
                 "started" if worker.starts == 1 else "restarted", worker.process.pid,
                 f"{self.config.subscription.connection_id}-{worker.index}")

    def _check(self, worker: _Worker, now: float) -> None:
        """Notice a worker's exit and decide: finished, restart, or stop everything."""
        if worker.process is None or worker.process.poll() is None:
            return
        status, ran = worker.process.returncode, now - worker.started
        worker.process = None
        what = f"killed by {_signal_name(-status)}" if status < 0 else f"exited with status {status}"
        if status == 0:
            worker.finished = True
            log.info("worker %d finished (status 0)", worker.index)
            return
        if self._stopping_since is not None:
            # Killed by our SIGTERM itself: it came before the worker's handler, so nothing was taken yet.
            early = status == -signal.SIGTERM
            log.log(logging.INFO if early else logging.WARNING, "worker %d %s while stopping", worker.index, what)
            if self._failure is None and not early:
                self._forced |= status < 0 or status == 130
                self._unclean |= status > 0 and status != 130
            return
        if status in (CONFIG_STATUS, FATAL_STATUS):
            reason = "its configuration is invalid" if status == CONFIG_STATUS else "an error no restart can fix"
            self._fail(status, now, f"worker {worker.index} {what} ({reason}, see its message above); "
                                    "stopping all workers")
            return
        worker.quick_exits = worker.quick_exits + 1 if ran < STARTUP_SECONDS else 0
        if worker.quick_exits >= QUICK_EXITS:
            self._fail(1, now, f"worker {worker.index} {what} within {STARTUP_SECONDS:g} s of its start "
                               f"{worker.quick_exits} times in a row; giving up, stopping all workers")
            return
        if ran >= STEADY_SECONDS:
            worker.backoff.reset()
        delay = worker.backoff.next_delay()
        if delay is None:
            self._fail(1, now, f"worker {worker.index} {what}; {worker.backoff.attempts - 1} restarts in a row "
                               "failed (reconnect.max_attempts); stopping all workers")
            return
        worker.restart_at = now + delay
        log.warning("worker %d %s after %.1f s; restarting in %.1f s", worker.index, what, ran, delay)

    def _fail(self, status: int, now: float, message: str) -> None:
        log.error("%s", message)
        self._failure = status
        self._begin_stop(now, None)

    def _begin_stop(self, now: float, message: str | None) -> None:
        if message:
            log.info("%s", message)
        self._stopping_since = now
        for worker in self.workers:
            worker.restart_at = None

    def _forward_stop(self, now: float) -> None:
        """SIGTERM each running worker once; SIGKILL those left after the shutdown timeout."""
        limit = self.config.shutdown_timeout + KILL_MARGIN
        overdue = self._stopping_since is not None and now - self._stopping_since > limit
        for worker in self.workers:
            process = worker.process
            if process is None or process.returncode is not None or worker.killed:
                continue
            try:
                if overdue:
                    log.warning("worker %d still running %g s after SIGTERM; killing it", worker.index, limit)
                    process.kill()
                    worker.killed = True
                elif not worker.signalled:
                    process.send_signal(signal.SIGTERM)
                    worker.signalled = True
            except OSError:
                pass

    def _status(self) -> int:
        if self._failure is not None:
            return CONFIG_STATUS if self._failure == CONFIG_STATUS else 1
        if self._stop_requested:
            if self._forced or self._unclean:
                log.warning("not every worker stopped cleanly")
            else:
                log.info("all workers stopped")
            return 130 if self._forced else 1 if self._unclean else 0
        log.info("all %d workers finished", len(self.workers))
        return 0


def worker_command(config_path: Path, index: int, options: Sequence[str] = ()) -> list[str]:
    """``python -m bridge run -c CONFIG --worker INDEX [options]`` for this interpreter."""
    return [sys.executable, "-m", "bridge", "run", "-c", str(config_path.resolve()), "--worker", str(index),
            *options]


def worker_env() -> dict[str, str]:
    """This environment, with the directory holding the ``bridge`` package first on PYTHONPATH."""
    root = str(Path(__file__).resolve().parent.parent)
    paths = [root, *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != root)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
