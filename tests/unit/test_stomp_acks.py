"""The STOMP transport's acknowledgements, on a stand-in for stomp.py's connection.

The broker side (ActiveMQ's ``StompSubscription``) decides what an ``ACK`` covers: with
``ack:client`` every message it counts as dispatched before the one named, whether or not the
bridge read it. The transport subscribes ``client-individual`` and names, in each ``ACK``, one
message the runner acknowledged. These tests read the frames written to the socket and check
that, after a reconnect too, no frame names a message the runner did not acknowledge, and that
each one names exactly one.
"""

from __future__ import annotations

import re
import threading

import pytest

from bridge.config import parse_config
from bridge.errors import ConnectionLostError, TransportError
from bridge.transports.stomp import StompTransport
from bridge.transports.stomp.frames import ack_frame
from bridge.transports.stomp.link import Link as _Link

FRAME = re.compile(rb"ACK\nid:([^\n]*)\n\n\x00")


class _Socket:
    recv = None


class _Wire:
    """What stomp.py's transport would write to the socket."""

    blocking = True

    def __init__(self) -> None:
        self.socket = _Socket()
        self.written: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.written.append(data)


class _Conn:
    """The parts of ``stomp.StompConnection12`` the transport uses; SUBSCRIBE is answered at once."""

    def __init__(self) -> None:
        self.transport = _Wire()
        self.subscribed: list[dict[str, str]] = []
        self.link: _Link | None = None

    def subscribe(self, destination: str, sub_id: str, ack: str, headers: dict[str, str]) -> None:
        self.subscribed.append({"destination": destination, "id": sub_id, "ack": ack, **headers})
        assert self.link is not None
        self.link.receipts[headers["receipt"]].set()

    def acks(self) -> list[str]:
        """The ack id named by each ACK frame written, in order (escapes undone)."""
        names = [m.group(1).decode() for data in self.transport.written for m in FRAME.finditer(data)]
        assert sum(len(FRAME.findall(d)) for d in self.transport.written) == len(names)
        return [n.replace("\\c", ":").replace("\\\\", "\\") for n in names]


@pytest.fixture
def transport() -> StompTransport:
    config = parse_config({"profile": "generic", "subscription": {"destination": "queue:q", "connection_id": "c1"},
                           "transport": "stomp"}, env={})
    return StompTransport(config)


def _connect(transport: StompTransport) -> tuple[_Link, _Conn]:
    """A new connection (as after a reconnect), up and subscribed."""
    conn = _Conn()
    link = _Link(transport, conn, "127.0.0.1:61613")  # type: ignore[arg-type]
    conn.link, link.up = link, True
    transport._link = link
    transport.subscribe(transport.config.subscription.destination)
    return link, conn


def _deliver(link: _Link, seqs: range, *, redelivered: bool = False) -> None:
    """MESSAGE frames for messages ``seqs`` arrive (ack ids are the broker's, made per delivery)."""
    link.on_messages([({"message-id": f"ID:p-1:1:1:{n}", "ack": f"ID:broker-{id(link)}:{n}",
                        "subscription": "sub-1", "redelivered": str(redelivered).lower()}, b"{}") for n in seqs])


def test_subscribes_client_individual(transport: StompTransport) -> None:
    _, conn = _connect(transport)
    assert conn.subscribed[0]["ack"] == "client-individual"
    assert conn.subscribed[0]["destination"] == "/queue/q"


def test_after_a_reconnect_each_ack_names_one_acknowledged_message_only(transport: StompTransport) -> None:
    first, _ = _connect(transport)
    _deliver(first, range(0, 10))
    written = transport.receive(10, 0)
    transport.ack_many(written[:6])  # 6-9 written to the sink, then the connection drops
    first.up, first.lost_reason = False, "connection lost"
    with pytest.raises(ConnectionLostError):
        transport.ack_many(written[6:])
    transport.close()

    second, conn = _connect(transport)  # the slave: redelivers 4-9 (4-5 acked too late), then new ones
    _deliver(second, range(4, 10), redelivered=True)
    _deliver(second, range(10, 2000))
    batch = transport.receive(500, 0)  # all redeliveries first: recognised as duplicates, acked at once
    assert [e.message_id for e in batch[:6]] == [f"ID:p-1:1:1:{n}" for n in range(4, 10)]
    transport.ack_many(batch[:6])
    assert conn.acks() == [f"ID:broker-{id(second)}:{n}" for n in range(4, 10)]

    # The rest of the batch is acked out of order, with one event held back: no frame names it,
    # and no frame names anything the broker dispatched after the events acked.
    held = batch[100]
    rest = [e for e in batch[6:] if e is not held]
    transport.ack_many(list(reversed(rest)))
    named = conn.acks()
    acked_ids = {e.headers["ack"] for e in (*batch[:6], *rest)}
    assert len(named) == len(set(named)) == len(acked_ids)
    assert set(named) == acked_ids
    assert held.headers["ack"] not in named
    transport.ack(held)
    assert conn.acks()[-1] == held.headers["ack"]
    assert len(conn.transport.written) == 3  # one write per ack_many call


def test_an_event_of_the_old_connection_is_not_acked_on_the_new_one(transport: StompTransport) -> None:
    first, _ = _connect(transport)
    _deliver(first, range(0, 3))
    old = transport.receive(3, 0)
    transport.close()
    second, conn = _connect(transport)
    _deliver(second, range(0, 3))
    with pytest.raises(TransportError, match="unknown delivery tag"):
        transport.ack_many(old)
    assert conn.transport.written == []


def test_ack_ids_are_escaped_as_stomp_headers() -> None:
    assert ack_frame("ID:a\\b\nc") == b"ACK\nid:ID\\ca\\\\b\\nc\n\n\x00"
    assert ack_frame("plain-1") == b"ACK\nid:plain-1\n\n\x00"


def test_acks_from_another_thread_while_frames_arrive(transport: StompTransport) -> None:
    link, conn = _connect(transport)
    feeder = threading.Thread(target=lambda: [_deliver(link, range(n, n + 50)) for n in range(0, 5000, 50)])
    feeder.start()
    taken = 0
    while taken < 5000:
        events = transport.receive(500, 0.5)
        transport.ack_many(events)
        taken += len(events)
    feeder.join()
    assert conn.acks() == [f"ID:broker-{id(link)}:{n}" for n in range(5000)]
