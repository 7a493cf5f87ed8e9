"""The STOMP transport's fast path for MESSAGE frames, on one stomp.py connection.

stomp.py's receiving thread parses every frame with regular expressions (two ``re.sub`` per
header line) and hands it to every listener through ``notify`` (a sorted copy of the listeners,
taken under a lock, per frame). At 10,000 messages/s that is most of the thread's time, and the
thread is what limits the STOMP transport. :func:`install` replaces, on one connection only, the
step that turns what stomp.py read into frames:

* a MESSAGE frame with LF line ends (as ActiveMQ writes them) is split here, header escapes
  undone, and the messages of one read go to one callback call, in order, before any other
  frame of that read is handled;
* every other frame (CONNECTED, RECEIPT, ERROR, heart-beats, a MESSAGE with CR LF) takes
  stomp.py's own path, unchanged.

Reading the socket (TLS included) and cutting the bytes into frames stay stomp.py's. It relies on
private names of stomp.py 9 (``BaseTransport.__read`` and ``__read_frames``); when they are not
there, :func:`install` changes nothing and returns False, and the transport works as before.
Headers come out as stomp.py makes them: the first of repeated headers wins, lines without a
colon are skipped, bytes that are not UTF-8 become U+FFFD.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Callable

from stomp.utils import HEARTBEAT_FRAME, parse_frame

log = logging.getLogger(__name__)

#: (headers, body) of each MESSAGE frame of one read, in order.
Deliver = Callable[[list[tuple[dict[str, str], bytes]]], None]

_MESSAGE = b"MESSAGE\n"
_ESCAPED = re.compile(r"\\.")
_UNESCAPES = {"\\r": "\r", "\\n": "\n", "\\c": ":", "\\\\": "\\"}  # STOMP 1.2 header escapes
_PRIVATE = ("_BaseTransport__read", "_BaseTransport__read_frames", "_BaseTransport__is_eol",
            "_BaseTransport__auto_decode")


def parse_message(frame: bytes) -> tuple[dict[str, str], bytes] | None:
    """Headers and body of a plain MESSAGE frame (as cut by stomp.py, without its NUL), else None."""
    if not frame.startswith(_MESSAGE):
        return None
    end = frame.find(b"\n\n")
    if end < 0:
        return None
    head = frame[len(_MESSAGE):end]
    if b"\r" in head:  # CRLF line ends: stomp.py's parser handles those
        return None
    headers: dict[str, str] = {}
    for line in head.decode("utf-8", "replace").split("\n"):
        key, colon, value = line.partition(":")
        if colon and key:
            if "\\" in key:
                key = _ESCAPED.sub(_unescape, key)
            if key not in headers:
                # ActiveMQ escapes the colons of ids ("ID\\c..."): most values have none
                headers[key] = _ESCAPED.sub(_unescape, value) if "\\" in value else value
    return headers, frame[end + 2:]


def _unescape(match: "re.Match[str]") -> str:
    escaped = match.group(0)
    return _UNESCAPES.get(escaped, escaped)  # an unknown escape stays as it is, as in stomp.py


def install(conn: Any, deliver: Deliver) -> bool:
    """Route the MESSAGE frames of ``conn`` (a stomp.py connection) to ``deliver``, in batches.

    ``deliver`` runs on stomp.py's receiving thread and must not raise. Listeners then see no
    ``on_message``/``on_before_message`` call for those frames; stomp.py's heart-beat clock is
    still wound at each read that brought messages.

    Returns:
        Whether the fast path is in place (False: stomp.py's own path, with ``on_message``).
    """
    transport = conn.transport
    if not all(hasattr(transport, name) for name in _PRIVATE) or getattr(transport, _PRIVATE[3]):
        log.debug("stomp.py %s: MESSAGE frames take stomp.py's own path", getattr(conn, "version", "?"))
        return False
    read, is_eol = getattr(transport, _PRIVATE[0]), getattr(transport, _PRIVATE[2])
    process_frame, notify = transport.process_frame, transport.notify

    def read_frames() -> None:  # as BaseTransport.__read_frames (auto_decode off), plus the fast path
        batch: list[tuple[dict[str, str], bytes]] = []
        for frame in read():
            message = parse_message(frame)
            if message is not None:
                batch.append(message)
                continue
            if batch:  # messages first, in the order they came
                deliver(batch)
                notify("heartbeat")
                batch = []
            parsed = HEARTBEAT_FRAME if is_eol(frame) else parse_frame(frame)
            if parsed is not None:
                process_frame(parsed, frame)
        if batch:
            deliver(batch)
            notify("heartbeat")

    # An instance attribute: BaseTransport.__io_loop looks the method up on each read.
    setattr(transport, _PRIVATE[1], read_frames)
    return True
