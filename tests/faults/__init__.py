"""Fault tests: kill, restart, stall, sink errors, bad messages, duplicate ids, backlog.

Each test publishes a known set of persistent events, injects one fault, drains, and counts
what reached the sink and the dead-letter file (see :mod:`tests.faults.checker`).
"""
