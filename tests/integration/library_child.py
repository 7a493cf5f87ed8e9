"""Run in a child process by test_library.py: a host application that started its own JVM
before using amq-bridge as a library. Prints one JSON line with what it consumed."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import jpype

from bridge.jvm import classpath

config_path, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
jars = Path(__file__).resolve().parents[2] / "jars"
# the host's own JVM; mode "nojars": one without the ActiveMQ client on its class path
jpype.startJVM("-Xrs", classpath=[] if mode == "nojars" else classpath(jars), convertStrings=False)
jvm = jpype.java.lang.management.ManagementFactory.getRuntimeMXBean().getName()

import bridge  # noqa: E402
from bridge.errors import BridgeError  # noqa: E402

seen = []
error = None
if mode == "nojars":
    try:
        with bridge.open(config_path) as stream:
            stream.receive(timeout=30)
    except BridgeError as exc:
        error = f"{type(exc).__name__}: {exc}"
elif mode == "open":
    with bridge.open(config_path) as stream:
        for event in stream:
            seen.append(event.data)
            event.ack()
            if len(seen) == count:
                break
else:
    bridge.run(config_path, lambda events: seen.extend(e.data for e in events), max_events=count, idle_timeout=60)
same_jvm = jpype.java.lang.management.ManagementFactory.getRuntimeMXBean().getName() == jvm
print(json.dumps({"seen": seen, "same_jvm": bool(same_jvm), "jvm_running": bool(jpype.isJVMStarted()),
                  "error": error}))
