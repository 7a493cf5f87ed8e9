"""Run in a child process by test_async.py (the openwire transport starts a JVM of its own, which
the test process must not get): one asyncio scenario, then one JSON line with what it saw.

    async_child.py SCENARIO COUNT CONFIG [CONFIG...]

Events are named by their index in the generated sequence (``bridge.publish.sample_event``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import time
from contextlib import suppress
from typing import Any

import bridge
from bridge.publish import sample_event

#: Ticker period of the ``flow`` scenario, in seconds.
TICK = 0.01
INDEX = {sample_event(i)["md5"]: i for i in range(10_000)}


def index(event: bridge.Event) -> int:
    return INDEX[event.data["md5"]]


def run_queue_seconds() -> dict[int, float]:
    """Per Python thread of this process: seconds spent runnable but waiting for a CPU (Linux schedstat)."""
    waits = {}
    for thread in threading.enumerate():
        try:
            with open(f"/proc/self/task/{thread.native_id}/schedstat") as stat:  # run time, wait time, slices
                waits[thread.native_id] = int(stat.read().split()[1]) / 1e9
        except OSError:  # the thread just ended
            pass
    return waits


def starved(before: dict[int, float], after: dict[int, float]) -> float:
    """The longest a Python thread waited for a CPU between two readings of run_queue_seconds."""
    return max([wait - before[tid] for tid, wait in after.items() if tid in before] or [0.0])


async def flow(count: int, config: str) -> dict[str, Any]:
    """``async for`` over ``count`` events acking each, with a ticker on the same loop; then an idle receive.

    The ticker's lateness is counted without the longest time a Python thread of the process
    waited for a CPU (the loop's own, or the one holding the interpreter lock): on a machine
    shared with other work, the operating system delays a ticker as much with no bridge at all.
    """
    loop, seen = asyncio.get_running_loop(), []
    lateness: dict[str, list[float]] = {"connecting": [0.0], "flowing": [], "raw": [], "control": []}
    phase = "connecting"

    async def ticker() -> None:
        while True:
            before, queued = loop.time(), run_queue_seconds()
            await asyncio.sleep(TICK)
            late = loop.time() - before - TICK
            lateness[phase].append(late - starved(queued, run_queue_seconds()))
            if phase == "flowing":
                lateness["raw"].append(late)

    async with bridge.aopen(config) as stream:
        tick = asyncio.create_task(ticker())
        first = await stream.receive(timeout=60)
        assert first is not None, "no event within 60 s"
        phase, started = "flowing", time.monotonic()
        seen.append(index(first))
        first.ack()
        async for event in stream:
            seen.append(index(event))
            event.ack()
            if len(seen) == count:
                break
        flow_seconds = time.monotonic() - started
        phase = "control"  # the measure sees a loop that is blocked: 80 ms of CPU work on it
        await asyncio.sleep(2 * TICK)
        busy_until = time.thread_time() + 0.08
        while time.thread_time() < busy_until:
            pass
        await asyncio.sleep(2 * TICK)
        tick.cancel()
        before = time.monotonic()
        idle = await stream.receive(timeout=0.5)
        idle_seconds = time.monotonic() - before
    return {"seen": seen, "max_late": max(lateness["flowing"]), "ticks": len(lateness["flowing"]),
            "max_late_raw": max(lateness["raw"]), "max_late_connecting": max(lateness["connecting"]),
            "control_late": max(lateness["control"]), "flow_seconds": flow_seconds,
            "idle_none": idle is None, "idle_seconds": idle_seconds}


async def cancel(count: int, config: str) -> dict[str, Any]:
    """Ack 20 events, take one more, get cancelled while working on it; a second stream takes the rest."""
    first: list[int] = []
    working = asyncio.Event()
    streams: list[bridge.AsyncStream] = []

    async def consumer() -> None:
        async with bridge.aopen(config) as stream:
            streams.append(stream)
            async for event in stream:
                first.append(index(event))
                if len(first) <= 20:
                    event.ack()
                else:
                    working.set()
                    await asyncio.sleep(3600)  # cancelled here, with this event unacked

    task = asyncio.create_task(consumer())
    await asyncio.wait_for(working.wait(), 60)
    task.cancel()
    before = time.monotonic()
    with suppress(asyncio.CancelledError):
        await task
    close_seconds = time.monotonic() - before
    second: list[int] = []
    async with bridge.aopen(config) as stream:  # the same connection id: the first stream let go of it
        timeout = 60.0
        while (event := await stream.receive(timeout=timeout)) is not None:
            second.append(index(event))
            event.ack()
            timeout = 1.5
    return {"first": first, "second": second, "cancelled": task.cancelled(), "close_seconds": close_seconds,
            "broker_acked": streams[0].stats.acknowledged}


async def two(count: int, *configs: str) -> dict[str, Any]:
    """Several streams in one loop, each with its own connection id, consumed concurrently."""
    async def consume(config: str) -> list[int]:
        seen = []
        async with bridge.aopen(config) as stream:
            async for event in stream:
                seen.append(index(event))
                event.ack()
                if len(seen) == count:
                    break
        return seen

    return {"seen": await asyncio.wait_for(asyncio.gather(*map(consume, configs)), 120)}


async def arun(count: int, config: str) -> dict[str, Any]:
    """arun with an async handler (sink.mode: event) that always raises on event 7."""
    delivered: list[int] = []
    attempts: dict[int, int] = {}

    async def handler(event: bridge.Event) -> None:
        await asyncio.sleep(0)
        i = index(event)
        attempts[i] = attempts.get(i, 0) + 1
        if i == 7:
            raise ValueError("poison event 7")
        delivered.append(i)

    stats = await bridge.arun(config, handler, max_events=count, idle_timeout=60)
    return {"delivered": delivered, "attempts_7": attempts.get(7, 0), "dead_lettered": stats.dead_lettered,
            "retried": sorted(i for i, n in attempts.items() if n > 1 and i != 7)}


def main() -> None:
    scenario, count, configs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    result = asyncio.run(globals()[scenario](count, *configs))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
