"""Embedding amq-bridge in your own Python program: read events, ack each one you handled.

    .venv/bin/python examples/embed.py -c config.yaml [--count N] [--idle-timeout S]

Each event is handed over once; an event you do not ``ack()`` is never acknowledged to the broker,
so after ``close`` (end of the ``with`` block) or a crash it is delivered again. The runner behind
``bridge.open`` reconnects, de-duplicates and sets bad messages aside exactly as ``amq-bridge run``.
Run ``scripts/demo`` once, or ``amq-bridge broker -c config.yaml``, for a local broker to try it on.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import bridge


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", required=True, help="config.yaml (a dict or a BridgeConfig work too)")
    parser.add_argument("--count", type=int, default=0, help="stop after this many events (0: never)")
    parser.add_argument("--idle-timeout", type=float, default=0, help="stop after this many idle seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")

    seen, last = 0, time.monotonic()
    with bridge.open(args.config) as stream:
        while not args.count or seen < args.count:
            event = stream.receive(timeout=0.5)
            if event is None:
                if args.idle_timeout and time.monotonic() - last > args.idle_timeout:
                    break
                continue
            print(event.data["md5"], event.data.get("label", "-"), flush=True)  # your work here
            event.ack()  # only now may the broker forget it
            seen, last = seen + 1, time.monotonic()
    print(f"{seen} events handled", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
