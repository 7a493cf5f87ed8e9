"""amq-bridge in an asyncio program: ``async for`` over events, ack each one you handled.

    .venv/bin/python examples/embed_async.py -c config.yaml [--count N] [--idle-timeout S]

The loop stays free while events flow: the bridge's runner, the JVM and stomp.py work on threads
of their own, and ``event.ack()`` never waits. An event you do not ``ack()`` is never
acknowledged to the broker, so after the ``async with`` block ends (or the task is cancelled, or
the process crashes) it is delivered again. Run ``scripts/demo`` once, or
``amq-bridge broker -c config.yaml``, for a local broker to try it on.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time

import bridge


async def store(event: bridge.Event) -> None:
    """Your work here (an HTTP call, a database write...); printing stands in for it."""
    print(event.data["md5"], event.data.get("label", "-"), flush=True)


async def consume(config: str, count: int, idle_timeout: float) -> int:
    seen, last = 0, time.monotonic()
    async with bridge.aopen(config) as stream:
        while not count or seen < count:
            event = await stream.receive(timeout=0.5)
            if event is None:
                if idle_timeout and time.monotonic() - last > idle_timeout:
                    break
                continue
            await store(event)
            event.ack()  # only now may the broker forget it
            seen, last = seen + 1, time.monotonic()
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", required=True, help="config.yaml (a dict or a BridgeConfig work too)")
    parser.add_argument("--count", type=int, default=0, help="stop after this many events (0: never)")
    parser.add_argument("--idle-timeout", type=float, default=0, help="stop after this many idle seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    seen = asyncio.run(consume(args.config, args.count, args.idle_timeout))
    print(f"{seen} events handled", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
