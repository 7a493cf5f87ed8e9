"""Secrets never reach a log line, whatever logger and level produced it."""

from __future__ import annotations

import logging

from bridge import logs


def test_registered_secret_is_redacted_from_messages_and_tracebacks(capsys) -> None:
    secret = "0123456789abcdef0123456789abcdef"
    logs.configure("DEBUG")
    logs.register_secret(secret)
    logging.getLogger("some.driver").debug("CONNECT passcode:%s", secret)
    try:
        raise ValueError(f"bad {secret}")
    except ValueError:
        logging.getLogger("x").exception("failed")
    err = capsys.readouterr().err
    assert secret not in err
    assert "passcode:***" in err and "bad ***" in err


def test_chatty_driver_loggers_stay_above_debug() -> None:
    logs.configure("DEBUG")
    assert logging.getLogger("stomp.py").getEffectiveLevel() == logging.INFO


def test_json_lines_carry_level_logger_and_message_without_secrets(capsys) -> None:
    import json

    secret = "fedcba9876543210fedcba9876543210"
    logs.configure("INFO", "json")
    logs.register_secret(secret)
    logging.getLogger("bridge.runner").warning("refused with %s", secret)
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["level"] == "WARNING" and line["logger"] == "bridge.runner"
    assert line["message"] == "refused with ***" and line["time"].endswith("Z")
    logs.configure("INFO")
