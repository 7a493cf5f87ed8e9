"""The asyncio API over an in-memory transport: hand-off, acks, errors, cancellation."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

import bridge
import bridge.connection
from bridge.config import parse_config
from bridge.errors import AuthenticationError, BridgeError
from tests.unit.fakes import MemoryTransport

BODIES = [json.dumps({"md5": f"{i:032x}"}).encode() for i in range(10)]


class WaitingTransport(MemoryTransport):
    """Like a real transport, waits (briefly) when nothing is there instead of spinning."""

    def receive(self, max_events, timeout):
        events = super().receive(max_events, timeout)
        if not events:
            time.sleep(min(timeout, 0.01))
        return events


@pytest.fixture
def made(monkeypatch):
    """Streams get WaitingTransports serving BODIES; ``made["error"]`` makes connect raise instead."""
    made: dict = {"all": []}

    def create(name, config, hooks=None):
        transport = WaitingTransport(config, hooks, BODIES)
        if "error" in made:
            def refuse(timeout):
                raise made["error"]
            transport.connect = refuse
        made["all"].append(transport)
        return transport

    monkeypatch.setattr(bridge.connection, "create_transport", create)
    return made


def config(tmp_path: Path, **extra):
    return parse_config({"profile": "generic", "subscription": {"destination": "queue:q", "connection_id": "c"},
                         "dead_letter": str(tmp_path / "dead.jsonl"), "batch_size": 4, "stats_interval": 0,
                         "reconnect": {"initial_delay": 0.01, "max_delay": 0.02}, **extra}, env={})


def test_async_for_hands_over_every_event_and_acks_each_batch(tmp_path, made) -> None:
    async def main():
        seen = []
        async with bridge.aopen(config(tmp_path)) as stream:
            async for event in stream:
                seen.append(event.message_id)
                event.ack()
                if len(seen) == len(BODIES):
                    break
            started = time.monotonic()
            assert await stream.receive(timeout=0.2) is None
            assert 0.15 < time.monotonic() - started < 1.0
            return seen, stream.stats.acknowledged

    seen, acknowledged = asyncio.run(main())
    assert seen == [f"m{i}" for i in range(1, 11)] and acknowledged == 10
    assert made["all"][0].acked == seen and made["all"][0].closed


def test_leaving_early_acknowledges_nothing_of_the_batch_in_hand(tmp_path, made) -> None:
    async def main():
        async with bridge.aopen(config(tmp_path)) as stream:
            first = await stream.receive(timeout=5)
            first.ack()
            await stream.receive(timeout=5)  # taken, never acked
        with pytest.raises(StopAsyncIteration):
            await stream.receive()

    asyncio.run(main())
    assert made["all"][0].acked == [] and made["all"][0].closed


def test_cancelling_the_consumer_closes_the_stream(tmp_path, made) -> None:
    async def main():
        taken = asyncio.Event()

        async def consume():
            async with bridge.aopen(config(tmp_path)) as stream:
                async for _ in stream:
                    taken.set()
                    await asyncio.sleep(60)

        task = asyncio.create_task(consume())
        await asyncio.wait_for(taken.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert made["all"][0].acked == [] and made["all"][0].closed


def test_the_runner_error_reaches_the_consumer(tmp_path, made) -> None:
    made["error"] = AuthenticationError("credentials refused")

    async def main():
        async with bridge.aopen(config(tmp_path)) as stream:
            with pytest.raises(AuthenticationError, match="credentials refused"):
                await stream.receive(timeout=5)
            with pytest.raises(StopAsyncIteration):
                await stream.receive(timeout=5)

    asyncio.run(main())


def test_receive_before_start_says_how_to_start(tmp_path, made) -> None:
    async def main():
        with pytest.raises(BridgeError, match="async with"):
            await bridge.aopen(config(tmp_path)).receive()

    asyncio.run(main())


def test_arun_awaits_the_handler_on_the_loop(tmp_path, made) -> None:
    async def main():
        loop, batches = asyncio.get_running_loop(), []

        async def handler(events):
            assert asyncio.get_running_loop() is loop
            await asyncio.sleep(0)
            batches.append([e.message_id for e in events])

        stats = await bridge.arun(config(tmp_path), handler, max_events=len(BODIES))
        return batches, stats

    batches, stats = asyncio.run(main())
    assert sum(batches, []) == [f"m{i}" for i in range(1, 11)] and max(map(len, batches)) <= 4
    assert stats.delivered == 10 and made["all"][0].acked == sum(batches, [])


def test_cancelling_arun_cancels_the_handler_and_acknowledges_nothing(tmp_path, made) -> None:
    cancelled = []

    async def main():
        called = asyncio.Event()

        async def handler(events):
            called.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.append(len(events))
                raise

        task = asyncio.create_task(bridge.arun(config(tmp_path), handler))
        await asyncio.wait_for(called.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert cancelled == [4]
    assert made["all"][0].acked == [] and made["all"][0].closed
