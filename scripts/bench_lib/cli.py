"""``scripts/bench``: amq-bridge against a plain Java JMS consumer and plain stomp.py, in one run.

For each broker variant (non-persistent, persistent), one embedded broker (``amq-bridge broker`` in
a child process, loopback, authentication on) serves every consumer in turn:

1. throughput, ``--repeat`` times, consumers interleaved: ``--events`` AtData-shaped events are
   preloaded into a fresh queue by the Java producer (not measured), then the consumer starts and
   drains it. events/s = events / (last event - first event); start-up = process start to first
   event; peak RSS = the consumer process's VmHWM.
2. latency, ``--latency-repeat`` times per consumer, consumers interleaved: the consumer is started
   on a fresh queue and, once subscribed, the Java producer publishes ``--rate`` events/s for
   ``--latency-seconds``. Latency = when the event
   was acknowledged (plain consumers) or seen durable in the sink (amq-bridge, see sinkwatch.py),
   minus its JMSTimestamp (set by the producer on this same machine); the first
   ``--latency-warmup`` seconds of events are left out.
3. backlog, on the last variant, once per amq-bridge transport (jsonl sink): ``--backlog`` events
   (default 1,000,000) preloaded, then drained; peak RSS of the bridge process while it drains.

Then the sinks alone, no broker (sinkbench.py): ``--sink-events`` events written and flushed in
batches of ``--sink-batch`` into jsonl, sqlite and postgres. ``--sinks`` runs only that part.

Progress goes to stderr; the markdown report to stdout.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from bench_lib.consumers import CONSUMERS, PG_URL_VAR, Bench, Consumer, percentile, sqlite_sink_note
from bench_lib.procs import ROOT, BenchError, Broker, Children, ProcSampler, compile_java, start_broker
from bench_lib.report import Row, backlog_table, command_line, load_average, machine, table
from bench_lib import schedgroup, sinkbench

VARIANTS = ("nonpersistent", "persistent")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # so that `finally` stops everything
    group = schedgroup.join() if args.sched_group else schedgroup.SchedGroup(None, None, "--no-sched-group: "
                                                                              "each session its own autogroup")
    say(f"bench: {group.note}")
    try:
        if args.sinks:
            return _sinks_only(args, argv, group.note)
        return _run(args, argv, group.note)
    finally:
        group.leave()


def _run(args: argparse.Namespace, argv: list[str], sched_note: str) -> int:
    consumers = [c for c in CONSUMERS if c.key in args.only]
    say(f"bench: {len(consumers)} consumers x {args.repeat} x {args.events:,} events, "
        f"variants {','.join(args.variants)}")
    load_before, about = load_average(), machine()  # before the runs: the commit measured is the one at start
    workdir = Path(tempfile.mkdtemp(prefix="amq-bridge-bench-"))
    env = {**os.environ, "AMQ_USERNAME": "12345", "AMQ_PASSWORD": secrets.token_hex(16), "PYTHONUNBUFFERED": "1"}
    children = Children(env)
    rows: list[Row] = []
    backlog_rows: list[Row] = []
    failed: list[str] = []
    started = time.monotonic()
    pg = sinkbench.postgres_server(["postgres"] if any(c.sink == "postgres" for c in consumers) else [])
    try:
        pg_url, pg_note = pg.__enter__()
        env[PG_URL_VAR] = pg_url or ""
        from bridge.jvm import classpath
        from bridge.publish import generated_bodies

        jars = classpath(ROOT / "jars", ("client",))
        compile_java(workdir / "classes", jars)
        bodies = workdir / "bodies.jsonl"
        with open(bodies, "wb") as out:
            out.writelines(body + b"\n" for body in generated_bodies(max(args.events, 1)))
        sqlite_note = sqlite_sink_note()
        java_cp = os.pathsep.join([str(workdir / "classes"), *jars])
        for variant in args.variants:
            variant_rows = [Row(c, variant, note=sqlite_note if c.sink == "sqlite" and sqlite_note else
                                pg_note if c.sink == "postgres" and not pg_url else "") for c in consumers]
            rows += variant_rows
            backlog = args.backlog if variant == args.variants[-1] else 0
            try:
                backlog_rows += _variant(variant, variant_rows, args, children, workdir, java_cp, bodies, backlog,
                                         pg_url or "")
            except BenchError as exc:  # the broker failed: report what was measured, go on
                say(f"bench: {variant}: {exc}")
                failed.append(f"{variant}: {exc}")
        sink_rows = sinkbench.run(sinkbench.KINDS, args.sink_events, args.sink_batch, args.repeat, say) \
            if args.sink_events else []
    except KeyboardInterrupt:
        say("bench: interrupted; stopping everything")
        return 130
    except BenchError as exc:
        say(f"bench: {exc}")
        return 1
    finally:
        children.stop_all()
        pg.__exit__()
        shutil.rmtree(workdir, ignore_errors=True)
    _report(args, argv, about + [f"- {sched_note}"], rows, backlog_rows, failed, load_before,
            time.monotonic() - started)
    print("\n" + "\n".join(sinkbench.sink_table(sink_rows, args.sink_events, args.sink_batch, args.repeat)),
          flush=True)
    return 1 if failed or any(row.errors for row in rows + backlog_rows) else 0


def _variant(variant: str, rows: list[Row], args: argparse.Namespace, children: Children, workdir: Path,
             java_cp: str, bodies: Path, backlog: int, pg_url: str) -> list[Row]:
    """All runs on one broker: throughput ``repeat`` times (consumers interleaved), then latency,
    then (``backlog`` > 0) a backlog drained by each amq-bridge transport; returns the backlog rows."""
    vdir = workdir / variant
    vdir.mkdir()
    config = vdir / "broker.yaml"
    config.write_text("profile: atdata\ncredentials: {username: '${AMQ_USERNAME}', password: '${AMQ_PASSWORD}'}\n"
                      "subscription: {destination: 'queue:bench.unused', connection_id: bench-broker}\n")
    persistent = variant == "persistent"
    broker = start_broker(children, config, vdir, persistent)
    say(f"bench: {variant} broker at {broker.openwire_url} and stomp://{broker.stomp_host}")
    bench = Bench(children, broker, vdir, java_cp, bodies, persistent, ProcSampler(broker.process.pid), pg_url)
    try:
        for rep in range(args.repeat):
            for row in rows:
                if row.note:
                    continue
                queue = f"bench.{variant}.{row.consumer.slug}.{rep}"
                try:
                    seconds = time.monotonic()
                    published = bench.produce(queue, args.events)
                    time.sleep(1)  # let the broker settle (persistent: its store) before the clock starts
                    run = bench.run(row.consumer, queue, args.events)
                except BenchError as exc:
                    row.errors.append(str(exc))
                    say(f"bench: {variant} ({row.consumer.key}) run {rep + 1}: FAILED: {exc}")
                    _check_broker(broker)
                    continue
                row.runs.append(run)
                say(f"bench: {variant} ({row.consumer.key}) run {rep + 1}/{args.repeat}: {run.rate:,.0f} events/s, "
                    f"{run.cpu_us:,.0f} µs CPU/event (broker {run.broker_cpu_us:,.0f}), "
                    f"start-up {run.startup_s:.2f} s, peak RSS {run.rss_mib:,.0f} MiB "
                    f"(preload {published:,.0f}/s, {time.monotonic() - seconds:.0f} s in all)")
        count = int(args.rate * args.latency_seconds)
        for rep in range(args.latency_repeat if count else 0):
            for row in rows:
                if row.note:
                    continue
                try:
                    run = bench.run(row.consumer, f"bench.{variant}.{row.consumer.slug}.latency.{rep}", count,
                                    rate=args.rate)
                except BenchError as exc:
                    row.errors.append(f"latency: {exc}")
                    say(f"bench: {variant} ({row.consumer.key}) latency: FAILED: {exc}")
                    _check_broker(broker)
                    continue
                run.latencies = run.latencies[int(args.rate * args.latency_warmup):]
                row.latency.append(run)
                say(f"bench: {variant} ({row.consumer.key}) latency run {rep + 1}/{args.latency_repeat} at "
                    f"{args.rate:,.0f}/s (published at {run.publish_rate:,.0f}/s): p50 "
                    f"{percentile(run.latencies, 50):,.0f} / p99 {percentile(run.latencies, 99):,.0f} ms, "
                    f"{len(run.latencies)} events measured")
        return _backlog(variant, backlog, bench, [r.consumer for r in rows])
    finally:
        children.stop(broker.process, timeout=30)
        bench.broker_cpu.stop()


def _backlog(variant: str, count: int, bench: Bench, consumers: list[Consumer]) -> list[Row]:
    """Each amq-bridge transport (into jsonl) drains ``count`` preloaded events; peak RSS."""
    rows = [Row(c, variant) for c in consumers if c.kind == "bridge" and c.sink == "jsonl"] if count else []
    for row in rows:
        queue = f"bench.{variant}.{row.consumer.slug}.backlog"
        try:
            say(f"bench: {variant} ({row.consumer.key}) backlog: preloading {count:,} events")
            bench.produce(queue, count)
            time.sleep(1)
            run = bench.run(row.consumer, queue, count)
        except BenchError as exc:
            row.errors.append(f"backlog: {exc}")
            say(f"bench: {variant} ({row.consumer.key}) backlog: FAILED: {exc}")
            continue
        row.runs.append(run)
        say(f"bench: {variant} ({row.consumer.key}) backlog of {count:,}: {run.rate:,.0f} events/s, "
            f"peak RSS {run.rss_mib:,.0f} MiB")
    return rows


def _report(args: argparse.Namespace, argv: list[str], about: list[str], rows: list[Row], backlog_rows: list[Row],
            failed: list[str], load_before: str, seconds: float) -> None:
    out = [
        "### amq-bridge against plain JMS and plain stomp.py",
        "",
        "```sh",
        command_line(argv),
        "```",
        "",
        *about,
        f"- load average (1, 5, 15 min) {load_before} at start, {load_average()} at end; "
        f"the benchmark took {seconds / 60:.1f} min",
        f"- {args.events:,} AtData-shaped events per run (about 90 bytes of JSON each), queue preloaded "
        f"(not timed); events/s over first to last event; latency: {args.latency_repeat} runs of "
        f"{args.latency_seconds:g} s at {args.rate:,.0f} events/s, the first {args.latency_warmup:g} s "
        f"of each left out",
        "",
        *table(rows, args.rate, args.repeat),
        "",
        *backlog_table(backlog_rows, args.backlog),
        "",
        "How each column is measured:",
        "",
        "- events/s: events / (time of the last event - time of the first), median of the runs; (a), (a'), (b)",
        "  stamp their own first and last event (after its ack); for amq-bridge the sink is watched from outside",
        "  (inotify on its folder: a line seen flushed in the jsonl file, a row seen committed in sqlite;",
        "  postgres: LISTEN for the NOTIFY, holding the broker times of its rows, that a statement trigger of the",
        "  table sends at each insert, delivered once it committed).",
        "- vs (a): that divided by the median of (a) on the same broker.",
        "- CPU µs/event: user + system CPU time of the consumer process alone (/proc/PID/stat, sampled every",
        "  50 ms) from its first to its last event, per event, median of the runs. Much less sensitive than",
        "  events/s to other load on the machine. broker: the same for the broker process over the same span",
        "  (it serves only that consumer then, and the sending is over before the first event).",
        "- latency: the consumer runs, then the producer (Java, OpenWire) publishes at a fixed rate; latency =",
        "  JMSTimestamp (set by the producer, same machine and clock) to the ack (a, a', b) or to the event seen",
        "  in the sink (c, c', d), nearest-rank p50 / p99 of each run, millisecond resolution; the medians of the",
        "  runs, and the range of the p99s. A fresh consumer process starts for each run. \"backlog\": p50 of 50 ms or",
        "  more, or latency growing during the phase (median of the last tenth of the events > 50 ms above the",
        "  first tenth): events waited in a queue because the consumer, or the broker, or the machine running",
        "  producer, broker and consumer at once, did not keep the pace; the figure is then mostly queueing.",
        "- CPU µs/event at the fixed rate: consumer / broker CPU time from the start of publishing to the",
        "  consumer's last event, per event (small batches cost more per event than a preloaded queue; the",
        "  broker's figure includes receiving from the producer).",
        "- peak RSS: VmHWM of the consumer process (/proc/PID/status), median of the runs; amq-bridge's",
        "  includes its JVM (openwire). JVMs run with their default heap sizing.",
        "- start-up: process start to first event received (a, a', b) or first event in the sink (c, c', d),",
        "  with the queue already full; median of the runs.",
        "- amq-bridge runs with config.yaml's defaults (batch 500, prefetch 1000, no fsync, dedupe 10000,",
        "  no fallback); (a), (a'), (b) use prefetch 1000 and read each body without decoding JSON.",
    ]
    errors = [f"{row.variant} ({row.consumer.key}): {error}" for row in rows + backlog_rows
              for error in row.errors] + failed
    if errors:
        out += ["", "Failures:", ""]
        out += [f"- {error}" for error in errors]
    print("\n".join(out), flush=True)


def _sinks_only(args: argparse.Namespace, argv: list[str], sched_note: str) -> int:
    """``--sinks``: the sinks alone, no broker."""
    load_before, about, started = load_average(), machine(), time.monotonic()
    try:
        rows = sinkbench.run(sinkbench.KINDS, args.sink_events, args.sink_batch, args.repeat, say)
    except KeyboardInterrupt:
        say("bench: interrupted; stopping everything")
        return 130
    out = ["### amq-bridge's sinks alone", "", "```sh", command_line(argv), "```", "", *about, f"- {sched_note}",
           f"- load average (1, 5, 15 min) {load_before} at start, {load_average()} at end; "
           f"the benchmark took {(time.monotonic() - started) / 60:.1f} min", "",
           *sinkbench.sink_table(rows, args.sink_events, args.sink_batch, args.repeat)]
    print("\n".join(out), flush=True)
    return 0


def _check_broker(broker: Broker) -> None:
    """After a failed run: go on only if the broker is still up."""
    if broker.process.poll() is not None:
        raise BenchError(f"the broker exited (status {broker.process.returncode})")


def _parser() -> argparse.ArgumentParser:
    keys = [c.key for c in CONSUMERS]
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description="amq-bridge against a plain Java JMS consumer and plain stomp.py, "
        "on one embedded broker, same events. Markdown report on stdout.")
    parser.add_argument("--events", type=_positive, default=200_000, help="events per throughput run (default 200000)")
    parser.add_argument("--repeat", type=_positive, default=3,
                        help="throughput runs per consumer; the median is shown (default 3)")
    parser.add_argument("--variants", type=_choices(VARIANTS), default=list(VARIANTS),
                        help="nonpersistent,persistent (default both)")
    parser.add_argument("--only", type=_choices(keys, {"a2": "a'", "c2": "c'", "c3": "c''"}), default=keys,
                        help="consumers to run: a,a',b,c,c',c'',d,e (a2, c2, c3 also accepted; default all)")
    parser.add_argument("--rate", type=float, default=5000, help="events/s of the latency phase (default 5000)")
    parser.add_argument("--latency-seconds", type=float, default=10,
                        help="length of one latency run (default 10; 0: none)")
    parser.add_argument("--latency-repeat", type=_positive, default=3,
                        help="latency runs per consumer, interleaved; the median p50 and p99 are shown (default 3)")
    parser.add_argument("--backlog", type=int, default=1_000_000,
                        help="events of the backlog drained by each amq-bridge transport on the last variant, "
                             "for its peak RSS (default 1000000; 0: none)")
    parser.add_argument("--sinks", action="store_true",
                        help="only the sinks alone (no broker): write + flush into jsonl, sqlite, postgres")
    parser.add_argument("--sink-events", type=int, default=100_000,
                        help="events of each sink-alone run (default 100000; 0: none)")
    parser.add_argument("--sink-batch", type=_positive, default=500, help="batch of the sink-alone runs (default 500)")
    parser.add_argument("--no-sched-group", dest="sched_group", action="store_false",
                        help="leave the processes in the kernel's scheduling groups (autogroup: each PostgreSQL "
                             "backend its own); by default all of them share one (bench_lib/schedgroup.py)")
    parser.add_argument("--latency-warmup", type=float, default=1,
                        help="seconds of events left out of latency (default 1)")
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _choices(allowed: Sequence[str], aliases: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    def parse(text: str) -> list[str]:
        chosen = [(aliases or {}).get(item.strip(), item.strip()) for item in text.split(",") if item.strip()]
        unknown = [item for item in chosen if item not in allowed]
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(f"choose from {','.join(allowed)}")
        return [item for item in allowed if item in chosen]
    return parse


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)

