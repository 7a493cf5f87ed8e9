"""Logging set-up for the command line, with secrets redacted from every line.

Library code only uses ``logging.getLogger(__name__)``; this module is called by the CLI. Any
string registered with :func:`register_secret` is replaced by ``***`` in everything the handler
prints, whichever logger (ours, stomp.py's, JPype's) produced it and at whatever level.
"""

from __future__ import annotations

import json
import logging
import sys
import time

_secrets: set[str] = set()

#: Third-party loggers that print whole protocol frames at DEBUG; kept at INFO and above.
CHATTY = ("stomp.py",)


def register_secret(value: str) -> None:
    """Never print ``value`` (a password); empty and very short values are ignored."""
    if len(value) >= 4:
        _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


class RedactingFormatter(logging.Formatter):
    """A formatter whose output, traceback included, never holds a registered secret."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line (time, level, logger, message, exception), secrets redacted."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(line, ensure_ascii=False))


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Send log lines to stderr at ``level``, as ``text`` or ``json``, secrets redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in CHATTY:
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))


def close() -> None:
    """Flush every handler, then print nothing more, whichever thread logs (the end of a command
    whose last line must be its result, while a client's threads may still be winding down)."""
    root = logging.getLogger()
    for handler in root.handlers:
        handler.flush()
    logging.disable(logging.CRITICAL)
