"""The message ids of the last lines of a JSON-lines file, read from its end.

The runner seeds its de-duplication window from what the sinks already hold (see
:mod:`bridge.runner`); for a file that is its last lines. Reading starts at the end, in blocks of
:data:`BLOCK` bytes, and stops as soon as enough ids were found, so the cost depends on the
number of ids asked for (and the length of those lines), not on the size of the file.

An id is found without decoding the line: the first ``"message_id":`` key of the line, then its
JSON string. Inside a JSON string every ``"`` is escaped, so that key cannot be matched inside
a value (a ``reason`` text, a body); it is the top-level key, which comes before ``data``,
``headers`` and ``body_base64`` in the lines the bridge writes. Only an id that itself holds
an escape is decoded (with :func:`json.loads`, a few bytes).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import BinaryIO

#: How much of the file is read at a time, from the end backwards.
BLOCK = 64 * 1024

_KEY = re.compile(rb'"message_id"\s*:\s*"((?:[^"\\]|\\.)*)"')


def line_id(line: bytes) -> str | None:
    """The message id of one JSON line (a jsonl event or a dead-letter record), else ``None``."""
    match = _KEY.search(line)
    if match is None:
        return None
    raw = match.group(1)
    if b"\\" not in raw:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        value = json.loads(b'"' + raw + b'"')
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def tail_ids(path: Path, limit: int) -> list[str]:
    """The message ids of the last lines of ``path`` holding one, newest first, at most ``limit``.

    A missing file has none. A last line without its newline (a write cut short) is skipped.

    Raises:
        OSError: The file exists but cannot be read.
    """
    if limit <= 0:
        return []
    try:
        stream = open(path, "rb")
    except FileNotFoundError:
        return []
    with stream:
        return stream_tail_ids(stream, limit)


def stream_tail_ids(stream: BinaryIO, limit: int) -> list[str]:
    """:func:`tail_ids` of an open file (read with ``pread``; the file position is not used)."""
    fd = stream.fileno()
    pos = _end_of_last_line(fd, os.fstat(fd).st_size)
    found: list[str] = []
    partial = b""  # the start of the line whose end began the block read before
    while pos > 0 and len(found) < limit:
        start = max(0, pos - BLOCK)
        lines = (os.pread(fd, pos - start, start) + partial).split(b"\n")
        pos = start
        partial = lines[0] if pos > 0 else b""
        for line in reversed(lines[1:] if pos > 0 else lines):
            if line:
                message_id = line_id(line)
                if message_id is not None:
                    found.append(message_id)
                    if len(found) >= limit:
                        break
    return found


def _end_of_last_line(fd: int, size: int) -> int:
    """The offset just past the file's last newline (0 if none): a torn last line is left out."""
    pos = size
    while pos > 0:
        start = max(0, pos - BLOCK)
        cut = os.pread(fd, pos - start, start).rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        pos = start
    return 0
