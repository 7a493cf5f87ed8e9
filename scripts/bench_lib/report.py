"""The markdown the benchmark prints: the machine, the command line, one table, how it was measured."""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import subprocess
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from typing import Sequence

from bench_lib.consumers import Consumer, Run, percentile
from bench_lib.procs import ROOT, command_version


@dataclass
class Row:
    """The runs of one consumer on one variant of the broker."""

    consumer: Consumer
    variant: str
    runs: list[Run] = field(default_factory=list)
    latency: list[Run] = field(default_factory=list)  # the runs of the latency phase
    errors: list[str] = field(default_factory=list)
    note: str = ""  # why the row was not measured

    @property
    def rate(self) -> float | None:
        return statistics.median(r.rate for r in self.runs) if self.runs else None


def machine() -> list[str]:
    """Markdown bullet lines describing this machine and the software measured."""
    cpu = _first_field("/proc/cpuinfo", "model name") or platform.processor() or "?"
    mem_kb = int((_first_field("/proc/meminfo", "MemTotal") or "0 kB").split()[0])
    os_name = _first_field("/etc/os-release", "PRETTY_NAME", sep="=").strip('"') or platform.system()
    activemq = _jar_version(ROOT / "jars" / "activemq-client.jar")
    versions = ", ".join(f"{name} {_version(name)}" for name in ("stomp.py", "JPype1", "PyYAML"))
    return [
        f"- machine: {os.cpu_count()} CPUs ({cpu}), {mem_kb / 1024 / 1024:.1f} GiB RAM, {os_name}, "
        f"Linux {platform.release()}",
        f"- Java: {command_version(['java', '-version'])}; javac: {command_version(['javac', '-version'])}",
        f"- Python {platform.python_version()}; {versions}; ActiveMQ {activemq} (client jars and embedded broker)",
        f"- amq-bridge {_version('amq-bridge')} at {_git_revision()}",
    ]


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def command_line(argv: Sequence[str]) -> str:
    return shlex.join(["scripts/bench", *argv])


def table(rows: Sequence[Row], rate: float, repeat: int) -> list[str]:
    """The results table, one line per consumer and variant, in markdown."""
    lines = [
        f"| variant | consumer | events/s (median of {repeat}) | min–max | vs (a) "
        f"| CPU µs/event (broker) | latency p50 / p99 ms at {rate:,.0f}/s (p99 min–max) "
        f"| CPU µs/event (broker) at {rate:,.0f}/s "
        "| peak RSS MiB | start-up s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    baselines = {row.variant: row.rate for row in rows if row.consumer.key == "a"}
    for row in rows:
        name = f"({row.consumer.key}) {row.consumer.label}"
        if row.note:
            lines.append(f"| {row.variant} | {name} | {row.note} | | | | | | | |")
            continue
        base = baselines.get(row.variant)
        cells = [row.variant, name]
        if row.runs:
            rates = [r.rate for r in row.runs]
            cells += [f"{row.rate:,.0f}", f"{min(rates):,.0f}–{max(rates):,.0f}",
                      f"{row.rate / base:.2f}" if base else "–",
                      f"{statistics.median(r.cpu_us for r in row.runs):,.0f} "
                      f"({statistics.median(r.broker_cpu_us for r in row.runs):,.0f})"]
        else:
            cells += ["failed", "", "", ""]
        if row.latency:
            cells += [_latency(row.latency, rate),
                      f"{statistics.median(r.cpu_us for r in row.latency):,.0f} "
                      f"({statistics.median(r.broker_cpu_us for r in row.latency):,.0f})"]
        else:
            cells += ["failed" if row.errors else "–", ""]
        if row.runs:
            cells += [f"{statistics.median(r.rss_mib for r in row.runs):,.0f}",
                      f"{statistics.median(r.startup_s for r in row.runs):.2f}"]
        else:
            cells += ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def backlog_table(rows: Sequence[Row], count: int) -> list[str]:
    """The backlog runs: how fast a large backlog drains and the bridge's peak memory meanwhile."""
    if not rows:
        return []
    lines = [f"Draining a backlog of {count:,} events (jsonl sink):", "",
             "| variant | consumer | events/s | peak RSS MiB |", "| --- | --- | ---: | ---: |"]
    for row in rows:
        name = f"({row.consumer.key}) {row.consumer.label}"
        if row.runs:
            lines.append(f"| {row.variant} | {name} | {row.rate:,.0f} | {row.runs[0].rss_mib:,.0f} |")
        else:
            lines.append(f"| {row.variant} | {name} | failed | |")
    return lines


def _latency(runs: Sequence[Run], rate: float) -> str:
    """Median p50 / median p99 of the runs (with several, the p99 range after it), marked when in
    a run the consumer fell behind or the publisher could not keep the pace."""
    runs = [run for run in runs if run.latencies]
    if not runs:
        return "–"
    p50s = [percentile(run.latencies, 50) for run in runs]
    p99s = [percentile(run.latencies, 99) for run in runs]
    text = f"{statistics.median(p50s):,.0f} / {statistics.median(p99s):,.0f}"
    if len(runs) > 1:
        text += f" ({min(p99s):,.0f}–{max(p99s):,.0f})"
    if any(backlog(run.latencies) for run in runs):
        text += " backlog"
    slowest = min(run.publish_rate if run.publish_rate is not None else rate for run in runs)
    if slowest < 0.95 * rate:
        text += f" (published at {slowest:,.0f}/s)"
    return text


def backlog(latencies: Sequence[float]) -> bool:
    """Whether events waited in a queue rather than just crossed it: a median of 50 ms or more, or
    latency growing during the phase (the median of the last tenth of the events more than 50 ms
    above that of the first tenth)."""
    if percentile(latencies, 50) >= 50:
        return True
    tenth = len(latencies) // 10
    return tenth >= 10 and percentile(latencies[-tenth:], 50) - percentile(latencies[:tenth], 50) > 50


def _first_field(path: str, name: str, sep: str = ":") -> str:
    try:
        with open(path) as text:
            for line in text:
                key, found, value = line.partition(sep)
                if found and key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return ""


def _jar_version(path: os.PathLike[str]) -> str:
    try:
        with zipfile.ZipFile(path) as jar:
            manifest = jar.read("META-INF/MANIFEST.MF").decode(errors="replace")
    except (OSError, KeyError, zipfile.BadZipFile):
        return "?"
    for key in ("Implementation-Version", "Bundle-Version"):
        for line in manifest.splitlines():
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip()
    return "?"


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "?"


def _git_revision() -> str:
    """The commit measured, and whether the working tree had changes (read-only git commands)."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "an unknown commit"
    return f"commit {head or '?'}" + (" with uncommitted changes" if dirty else "")
