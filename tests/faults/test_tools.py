"""The fault tests' own tools, checked without a broker: the checker's counts and the stalling proxy."""

from __future__ import annotations

import base64
import json
import socket
import threading
from pathlib import Path

import pytest

from bridge.publish import sample_event
from tests.faults.checker import KIND_HEADER, tally
from tests.faults.proxy import TcpProxy

pytestmark = pytest.mark.faults


def _lines(path: Path, *records: object, raw: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + raw)
    return path


def test_checker_counts_lost_duplicated_unexpected(tmp_path: Path) -> None:
    good = [{"message_id": f"m{s}", "data": sample_event(s, sequence=True)} for s in (0, 1, 1, 3)]
    stranger = {"message_id": "m99", "data": sample_event(99, sequence=True)}
    altered = {"message_id": "m4", "data": {**sample_event(4, sequence=True), "md5": "changed"}}
    sink = _lines(tmp_path / "sink.jsonl", *good, stranger, altered, raw='{"message_id": "torn", "da\n')
    dead = _lines(tmp_path / "dead.jsonl",
                  {"reason": "empty body", "headers": {KIND_HEADER: "empty"}, "body_base64": ""},
                  {"reason": "?", "headers": {}, "body_base64": base64.b64encode(
                      json.dumps(sample_event(5, sequence=True)).encode()).decode()})
    result = tally(range(6), [sink], [dead], bad_kinds=("empty", "object"))
    assert (result.published, result.delivered, result.dead_lettered) == (8, 6, 2)  # the torn line is no delivery
    assert result.lost == 3 and result.lost_sample == [2, 4, "kind:object"]  # 4 arrived altered
    assert result.duplicated == 1 and result.duplicated_sample == [("seq", 1)]
    assert result.torn == 1
    assert result.unexpected == 4  # seq 99, altered seq 4, good seq 5 set aside, the torn line


def _echo_server() -> tuple[socket.socket, threading.Thread]:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


def test_proxy_pause_holds_bytes_without_closing() -> None:
    server, _ = _echo_server()
    with server, TcpProxy(server.getsockname()[:2]) as proxy:
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        with client:
            client.sendall(b"one")
            assert client.recv(16) == b"one"
            proxy.pause()
            client.sendall(b"two")
            client.settimeout(1.0)
            with pytest.raises(socket.timeout):  # neither data nor EOF: a stall, not a close
                client.recv(16)
            proxy.resume()
            client.settimeout(5)
            assert client.recv(16) == b"two"
        assert proxy.accepted == 1
