"""Java test programs of tests/java, compiled with javac at run time against the client jars."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.conftest import ROOT, child_env

SOURCES = ROOT / "tests" / "java"
CLIENT_JARS = ("activemq-client.jar", "geronimo-jms_1.1_spec.jar", "geronimo-j2ee-management-1.1-spec.jar",
               "hawtbuf.jar", "slf4j-api.jar")


def classpath(*extra: Path) -> str:
    return ":".join([*(str(ROOT / "jars" / name) for name in CLIENT_JARS), *map(str, extra)])


def compile_class(name: str, into: Path) -> Path:
    """Compile ``tests/java/org/amqbridge/test/<name>.java`` into ``into``; returns ``into``."""
    javac = shutil.which("javac")
    assert javac, "javac not found (scripts/setup installs a JDK)"
    result = subprocess.run([javac, "-nowarn", "-d", str(into), "-cp", classpath(),
                             str(SOURCES / "org" / "amqbridge" / "test" / f"{name}.java")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return into


def produce_properties(classes: Path, openwire_url: str, destination: str, start: int, count: int) -> None:
    """Run PropertyProducer: ``count`` persistent TextMessages with typed properties (see its source)."""
    result = subprocess.run(["java", "-cp", classpath(classes), "org.amqbridge.test.PropertyProducer", openwire_url,
                             destination, str(start), str(count)],
                            capture_output=True, text=True, timeout=120, env=child_env())
    assert result.returncode == 0, result.stderr[-3000:]
