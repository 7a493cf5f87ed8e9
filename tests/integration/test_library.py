"""The library API (bridge.open / bridge.run) in a host process that started its own JVM first."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.publish import sample_event
from tests.conftest import ROOT, Broker, child_env, publish, write_config

pytestmark = pytest.mark.broker
N = 200


def run_until_done(argv: list[str], err: Path, config: Path) -> bytes:
    """Start a consumer program, publish N events once it subscribed, and return its stdout;
    its stderr goes to ``err``; it must exit 0."""
    with open(err, "wb") as stderr:
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, env=child_env(), cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while "subscribed to" not in err.read_text() and time.monotonic() < deadline:
            assert child.poll() is None, err.read_text()
            time.sleep(0.05)
        publish(config, N)
        out, _ = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err.read_text()
    return out


@pytest.mark.parametrize("mode,transport", [("open", "openwire"), ("run", "openwire"), ("open", "stomp")])
def test_library_in_a_process_with_its_own_jvm(broker: Broker, tmp_path: Path, namespace: str, mode: str,
                                               transport: str) -> None:
    config = write_config(tmp_path / "lib.yaml", broker=broker, transport=transport, namespace=namespace)
    err = tmp_path / "child.stderr"
    child = str(ROOT / "tests/integration/library_child.py")
    out = run_until_done([sys.executable, child, str(config), mode, str(N)], err, config)
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["seen"] == [sample_event(i) for i in range(N)]
    assert result["same_jvm"] and result["jvm_running"]


def test_embedding_example_runs_and_acks(broker: Broker, tmp_path: Path, namespace: str) -> None:
    """examples/embed.py, as documented in README, handles every event once and acks it."""
    config = write_config(tmp_path / "embed.yaml", broker=broker, transport="stomp", namespace=namespace)
    err = tmp_path / "embed.stderr"
    example = str(ROOT / "examples/embed.py")
    out = run_until_done([sys.executable, example, "-c", str(config), "--count", str(N)], err, config)
    md5s = [line.split()[0] for line in out.decode().splitlines()]
    assert md5s == [sample_event(i)["md5"] for i in range(N)]
    assert f"{N} events handled" in err.read_text()
    # everything was acknowledged: a second consumer on the same queue gets nothing
    again = subprocess.run([sys.executable, str(ROOT / "examples/embed.py"), "-c", str(config),
                            "--idle-timeout", "2"], capture_output=True, env=child_env(), cwd=ROOT, timeout=60)
    assert again.returncode == 0 and again.stdout == b"", again.stderr.decode()[-2000:]


def test_host_jvm_without_activemq_classes_is_named_and_left_running(broker: Broker, tmp_path: Path,
                                                                     namespace: str) -> None:
    config = write_config(tmp_path / "lib.yaml", broker=broker, transport="openwire", namespace=namespace)
    child = subprocess.run([sys.executable, str(ROOT / "tests/integration/library_child.py"), str(config),
                            "nojars", "1"], capture_output=True, env=child_env(), cwd=ROOT, timeout=120)
    assert child.returncode == 0, child.stderr.decode()[-3000:]
    result = json.loads(child.stdout.decode().strip().splitlines()[-1])
    assert result["error"] and result["error"].startswith("TransportUnavailableError"), result
    assert "org.apache.activemq.ActiveMQConnectionFactory" in result["error"], result
    assert result["jvm_running"] and result["same_jvm"]


def test_own_connection_factory_class_is_used(broker: Broker, spawn, tmp_path: Path, namespace: str) -> None:
    """openwire.connection_factory: a javax.jms.ConnectionFactory class from openwire.classpath."""
    classes, marker = tmp_path / "classes", tmp_path / "factory.marker"
    source = ROOT / "tests/java/org/amqbridge/test/MarkingConnectionFactory.java"
    jars = [str(ROOT / "jars" / name) for name in ("activemq-client.jar", "geronimo-jms_1.1_spec.jar")]
    compiled = subprocess.run(["javac", "-nowarn", "-d", str(classes), "-cp", ":".join(jars), str(source)],
                              capture_output=True, text=True, timeout=120)
    assert compiled.returncode == 0, compiled.stderr
    config = write_config(tmp_path / "f.yaml", broker=broker, transport="openwire", namespace=namespace,
                          openwire={"connection_factory": "org.amqbridge.test.MarkingConnectionFactory",
                                    "classpath": [str(classes)],
                                    "jvm_options": ["-Xmx256m", f"-Damqbridge.test.marker={marker}"]})
    bridge = spawn(config, "--max-events", str(N), "--idle-timeout", "60")
    bridge.wait_for("subscribed to")
    publish(config, N)
    assert bridge.wait() == 0, bridge.stderr
    assert [e["data"] for e in bridge.events()] == [sample_event(i) for i in range(N)]
    assert marker.read_text().startswith("createConnection broker=failover:"), marker.read_text()


_GC_PROBE = """
import gc, json, sys
import jpype, _jpype
from bridge.jvm import classpath, ensure_jvm
from bridge.config import DEFAULT_JARS_DIR
if sys.argv[1] == "host":
    jpype.startJVM(classpath=classpath(DEFAULT_JARS_DIR), convertStrings=False)
started = ensure_jvm(classpath(DEFAULT_JARS_DIR))
print(json.dumps({"started": started, "hooked": any(cb is _jpype._collect for cb in gc.callbacks)}))
"""


@pytest.mark.parametrize("who", ["bridge", "host"])
def test_jpype_gc_hook_is_removed_only_from_the_jvm_the_bridge_starts(who: str) -> None:
    # JPype's hook calls System.gc() (a full, stop-the-world collection) after Python
    # collections while the process's native heap grows; in a JVM the bridge starts it is
    # removed, a host's JVM keeps it.
    result = subprocess.run([sys.executable, "-c", _GC_PROBE, who], capture_output=True, text=True, timeout=120,
                            env=child_env(), cwd=ROOT)
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe == {"started": who == "bridge", "hooked": who == "host"}


@pytest.mark.parametrize("transport", ["openwire", "stomp"])
def test_asyncio_example_runs_and_acks(broker: Broker, tmp_path: Path, namespace: str, transport: str) -> None:
    """examples/embed_async.py, as documented in README, handles every event once and acks it."""
    config = write_config(tmp_path / "aembed.yaml", broker=broker, transport=transport, namespace=namespace)
    example = str(ROOT / "examples/embed_async.py")
    err = tmp_path / "aembed.stderr"
    out = run_until_done([sys.executable, example, "-c", str(config), "--count", str(N)], err, config)
    assert [line.split()[0] for line in out.decode().splitlines()] == [sample_event(i)["md5"] for i in range(N)]
    assert f"{N} events handled" in err.read_text()
    again = subprocess.run([sys.executable, example, "-c", str(config), "--idle-timeout", "1"],
                           capture_output=True, env=child_env(), cwd=ROOT, timeout=60)
    assert again.returncode == 0 and again.stdout == b"", again.stderr.decode()[-2000:]
