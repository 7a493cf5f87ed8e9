"""One CPU scheduling group for every process of the benchmark, the PostgreSQL server's included.

With the kernel's autogroup on (``/proc/sys/kernel/sched_autogroup_enabled``, the default of
most distributions), each session is a scheduling group of its own, and PostgreSQL starts every
backend in a session of its own (``setsid``). On a machine kept busy by producer, broker and
bridge, a process outside their group waited for a CPU up to 200-400 ms at a time (measured with
/proc/PID/schedstat on 2 CPUs, Linux 6.18): the backend serving the postgres sink, holding up
the commit of a batch that needed 0.2 ms of CPU, and with it every event the serial runner
received after it; a process inside the group, no more than 8 ms. That is the placement of the
benchmark's processes on one machine, not the sink: a server of its own, or a machine without
autogroup, has no such wait.

:func:`join` puts this process in a cgroup of its own with the ``cpu`` controller, so that all
its children (broker, producer, consumers, ``pg_ctl`` and the server it starts) inherit it:
tasks outside the root cgroup are not put in autogroups, so they are scheduled as one group,
as they would be without autogroup. It needs root and a writable cgroup file system; otherwise
nothing changes, and the note says so.
"""

from __future__ import annotations

import os
from pathlib import Path

AUTOGROUP = Path("/proc/sys/kernel/sched_autogroup_enabled")
V1_CPU = Path("/sys/fs/cgroup/cpu")
V2_ROOT = Path("/sys/fs/cgroup")


class SchedGroup:
    """The cgroup this process joined (``path``), or None, and a note for the report."""

    def __init__(self, path: Path | None, parent: Path | None, note: str) -> None:
        self.path, self.parent, self.note = path, parent, note

    def leave(self) -> None:
        """Move this process back and remove the cgroup (once its other processes are gone)."""
        if self.path is None or self.parent is None:
            return
        try:
            (self.parent / "cgroup.procs").write_text(f"{os.getpid()}\n")
            self.path.rmdir()
        except OSError:
            pass  # a child still in it: the cgroup stays, empty once it exits
        self.path = None


def join() -> SchedGroup:
    """Put this process (and so every child it starts from now on) in a cgroup of its own."""
    try:
        if AUTOGROUP.read_text().strip() != "1":
            return SchedGroup(None, None, "autogroup off: the processes share the root scheduling group")
    except OSError:
        return SchedGroup(None, None, "no autogroup in this kernel")
    name = f"amq-bridge-bench-{os.getpid()}"
    if (V1_CPU / "cgroup.procs").exists():
        parent = V1_CPU
    elif "cpu" in _read(V2_ROOT / "cgroup.subtree_control").split():
        parent = V2_ROOT
    else:
        return SchedGroup(None, None, "autogroup on and no cgroup with the cpu controller at hand: each "
                          "PostgreSQL backend is a scheduling group of its own (see bench_lib/schedgroup.py)")
    path = parent / name
    try:
        path.mkdir(exist_ok=True)
        (path / "cgroup.procs").write_text(f"{os.getpid()}\n")
    except OSError as exc:
        try:
            path.rmdir()
        except OSError:
            pass
        return SchedGroup(None, None, f"autogroup on and cgroup {path} not usable ({exc.strerror}): each "
                          "PostgreSQL backend is a scheduling group of its own (see bench_lib/schedgroup.py)")
    return SchedGroup(path, parent, f"all processes of the benchmark in one CPU scheduling group (cgroup {path}), "
                      "the PostgreSQL server's included (see bench_lib/schedgroup.py)")


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
