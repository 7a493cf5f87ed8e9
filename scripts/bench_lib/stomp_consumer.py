"""The plain stomp.py consumer of scripts/bench: a listener that acks each message (client-individual).

    python stomp_consumer.py HOST:PORT QUEUE COUNT CLIENT_ID [LATENCY_FILE]

Prints ``ready MS`` once subscribed, ``first MS`` at the first message and ``done MS COUNT`` after
the last ACK was sent (MS: milliseconds since the epoch). With LATENCY_FILE, writes one line per
message: milliseconds from the broker's ``timestamp`` header to just after its ACK was sent.
Credentials come from AMQ_USERNAME / AMQ_PASSWORD. No JSON decoding, no sink: the body is only
touched, as in the Java baseline.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import stomp

IDLE_TIMEOUT = 60.0  # seconds without a message before giving up (every wait of the bench is bounded)


class Counter(stomp.ConnectionListener):
    """Acks every message from stomp.py's receiver thread, the way stomp.py's examples do."""

    def __init__(self, conn: stomp.Connection12, count: int, latencies: list[int] | None) -> None:
        self.conn, self.count, self.latencies = conn, count, latencies
        self.received, self.chars = 0, 0
        self.done, self.error = threading.Event(), ""
        self.last = time.monotonic()

    def on_message(self, frame: stomp.utils.Frame) -> None:
        if self.received == 0:
            print(f"first {time.time_ns() // 1_000_000}", flush=True)
        self.received += 1
        self.last = time.monotonic()
        self.chars += len(frame.body)
        self.conn.ack(frame.headers["ack"])
        if self.latencies is not None:
            self.latencies.append(time.time_ns() // 1_000_000 - int(frame.headers["timestamp"]))
        if self.received >= self.count:
            self.done.set()

    def on_error(self, frame: stomp.utils.Frame) -> None:
        self.error = frame.headers.get("message", "ERROR frame")
        self.done.set()

    def on_disconnected(self) -> None:
        if not self.done.is_set():
            self.error = self.error or "disconnected"
            self.done.set()


def main(argv: list[str]) -> int:
    host, _, port = argv[0].rpartition(":")
    queue, count, client_id = argv[1], int(argv[2]), argv[3]
    latency_file = argv[4] if len(argv) > 4 else None
    conn = stomp.Connection12([(host, int(port))], prefer_localhost=False, try_loopback_connect=False)
    counter = Counter(conn, count, [] if latency_file else None)
    conn.set_listener("bench", counter)
    conn.connect(os.environ.get("AMQ_USERNAME"), os.environ.get("AMQ_PASSWORD"), wait=True,
                 headers={"client-id": client_id})
    try:
        conn.subscribe(f"/queue/{queue}", "1", ack="client-individual",
                       headers={"activemq.prefetchSize": "1000"})  # amq-bridge's default prefetch
        print(f"ready {time.time_ns() // 1_000_000}", flush=True)
        while not counter.done.wait(1.0):
            if time.monotonic() - counter.last > IDLE_TIMEOUT:
                counter.error = f"no message for {IDLE_TIMEOUT:.0f} s after {counter.received}"
                break
        if counter.error:
            print(f"stomp_consumer: {counter.error}", file=sys.stderr)
            return 1
        print(f"done {time.time_ns() // 1_000_000} {counter.received} {counter.chars}", flush=True)
    finally:
        conn.disconnect()
    if latency_file:
        with open(latency_file, "w") as out:
            out.writelines(f"{ms}\n" for ms in counter.latencies)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
