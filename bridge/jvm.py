"""The one JVM of this process: find the jars, start it once, or reuse the host's.

JPype allows one JVM per process and it cannot be restarted. When the host application has
already started a JVM, amq-bridge uses it as it is (checking that the ActiveMQ classes are
loadable) and never starts, stops or restarts it.
"""

from __future__ import annotations

import gc
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from bridge.errors import TransportUnavailableError

log = logging.getLogger(__name__)

MANIFEST = "manifest.txt"
#: amq-bridge's own Java helper (jars/src), built by scripts/setup, not listed in the manifest.
HELPER_JAR = "amq-bridge-helper.jar"
SETUP_HINT = "run scripts/setup, which installs Debian's ActiveMQ packages and copies the jars"

#: Classes that must be loadable for each group of jars.
REQUIRED_CLASSES = {
    "client": ("javax.jms.Session", "org.apache.activemq.ActiveMQConnectionFactory"),
    "broker": ("org.apache.activemq.broker.BrokerService", "org.apache.activemq.transport.stomp.StompTransportFactory",
               "org.apache.activemq.jaas.GroupPrincipal"),
}

_lock = threading.Lock()
_java_log_filter = None  # keeps the Python side of the java.util.logging filter alive


@dataclass(frozen=True, slots=True)
class Jar:
    """One line of ``jars/manifest.txt``."""

    name: str
    group: str
    package: str


def read_manifest(jars_dir: Path) -> list[Jar]:
    """Parse the manifest in ``jars_dir``.

    Raises:
        TransportUnavailableError: The manifest is missing.
    """
    path = jars_dir / MANIFEST
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise TransportUnavailableError(f"jar manifest {path} is missing ({exc.strerror}); {SETUP_HINT}") from exc
    jars = []
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) == 3:
            jars.append(Jar(*fields))
    return jars


def classpath(jars_dir: Path, groups: Iterable[str] = ("client",), extra: Sequence[Path] = ()) -> list[str]:
    """The classpath for the given jar groups, plus ``extra`` entries.

    With the client group comes :data:`HELPER_JAR` when ``scripts/setup`` built it; without it
    the OpenWire transport falls back to plain JPype calls.

    Raises:
        TransportUnavailableError: A jar of the manifest, or an extra entry, does not exist; the
            message names it, its Debian package and how to get it.
    """
    wanted = set(groups)
    paths: list[str] = []
    for jar in read_manifest(jars_dir):
        if jar.group not in wanted:
            continue
        path = jars_dir / jar.name
        if not path.is_file():
            raise TransportUnavailableError(
                f"jar {jar.name} is missing from {jars_dir} (Debian package {jar.package}); {SETUP_HINT}"
            )
        paths.append(str(path))
    if "client" in wanted and (jars_dir / HELPER_JAR).is_file():
        paths.append(str(jars_dir / HELPER_JAR))
    for entry in extra:
        if not entry.exists():
            raise TransportUnavailableError(f"classpath entry {entry} does not exist")
        paths.append(str(entry))
    return paths


def ensure_jvm(cp: Sequence[str], groups: Iterable[str] = ("client",), options: Sequence[str] = ()) -> bool:
    """Start the JVM with ``cp``, or check that an already started one can load what we need.

    Args:
        cp: The classpath, used only when this call starts the JVM.
        groups: The jar groups whose classes must be loadable.
        options: Further JVM options (heap size...), used only when this call starts the JVM.

    Returns:
        True if this call started the JVM, False if one was already running.

    Raises:
        TransportUnavailableError: JPype or Java is missing, the JVM fails to start, or a running
            JVM cannot load the required classes (the message lists them).
    """
    try:
        import jpype
    except ImportError as exc:
        raise TransportUnavailableError(f"JPype1 is not installed ({exc})") from exc
    with _lock:
        if jpype.isJVMStarted():
            _check_classes(groups)
            return False
        try:
            jvm_path = jpype.getDefaultJVMPath()
        except Exception as exc:  # jpype.JVMNotFoundException and friends
            raise TransportUnavailableError(f"no Java runtime found ({exc}); install a JDK 11+ (Debian: default-jre-headless)") from exc
        try:
            # -Xrs leaves SIGINT/SIGTERM to Python, so Ctrl-C reaches our handlers, not the JVM's.
            jpype.startJVM(jvm_path, "-Xrs", "-Djava.awt.headless=true", *options, classpath=list(cp),
                           convertStrings=False, interrupt=False)
        except Exception as exc:
            raise TransportUnavailableError(f"the JVM failed to start ({exc})") from exc
        if threading.current_thread() is not threading.main_thread():
            # At exit JPype destroys the JVM, which waits for every non-daemon Java thread. The
            # thread that started the JVM stays one even after it ended, unlike the threads JPype
            # attaches on their own: the process would never exit. Detached now, this thread is
            # attached again like any other at its next call into Java.
            jpype.java.lang.Thread.detach()
        _quiet_java_logging()
        _no_gc_coupling()
        _check_classes(groups)
        log.debug("JVM started with %d classpath entries", len(cp))
        return True


def _no_gc_coupling() -> None:
    """Unhook JPype from Python's garbage collector, in a JVM this process started.

    JPype adds a ``gc.callbacks`` entry that, after a Python collection during which the
    process's malloc heap grew (the JVM's own native memory included), calls ``System.gc()``: a
    full, stop-the-world collection, on the thread that consumes. While the JVM warms up that
    happened every few seconds, each pause 20-30 ms, and it was what the openwire p99 latency at
    5,000 events/s was made of. The bridge keeps no Python/Java reference cycles (its Java
    objects are the connection's, for the life of the connection), so the JVM's own collector,
    run when its heap needs it, frees everything; a host's JVM is left as the host set it.
    """
    try:
        import _jpype
    except ImportError:
        return
    collect = getattr(_jpype, "_collect", None)
    if collect is not None:
        gc.callbacks[:] = [callback for callback in gc.callbacks if callback is not collect]


def _check_classes(groups: Iterable[str]) -> None:
    import jpype

    missing = []
    for group in groups:
        for name in REQUIRED_CLASSES.get(group, ()):
            try:
                jpype.JClass(name)
            except Exception:
                missing.append(name)
    if missing:
        raise TransportUnavailableError(
            "the running JVM cannot load " + ", ".join(missing) + f"; put the ActiveMQ jars on its classpath ({SETUP_HINT})"
        )


def _quiet_java_logging() -> None:
    """Send Java's warnings and errors (the ActiveMQ client's SLF4J is bound to java.util.logging)
    to Python logging as one line each, without stack traces; drop everything below WARNING."""
    import jpype

    Logger = jpype.JClass("java.util.logging.Logger")
    Level = jpype.JClass("java.util.logging.Level")
    formatter = jpype.JClass("java.util.logging.SimpleFormatter")()
    java_log = log.getChild("java")

    @jpype.JImplements("java.util.logging.Filter")
    class ToPythonLogging:
        @jpype.JOverride
        def isLoggable(self, record):  # noqa: N802 - Java's name; runs on Java threads
            try:
                value = record.getLevel().intValue()
                level = logging.ERROR if value >= 1000 else logging.WARNING if value >= 900 else logging.INFO
                source = str(record.getLoggerName() or "java").rpartition(".")[2]
                text = " ".join(str(formatter.formatMessage(record) or "").split())
                thrown = record.getThrown()
                if thrown is not None:
                    text += f" ({thrown.getClass().getSimpleName()}: {' '.join(str(thrown.getMessage() or '').split())})"
                if source == "FailoverTransport" and "not attempting to automatically reconnect" in text:
                    level = logging.DEBUG  # the broker's end of a connection we are closing ourselves
                java_log.log(level, "%s: %s", source, text)
            except Exception:  # never let a log record break the Java thread that wrote it
                pass
            return False  # Python logging has it; the JVM's console handler prints nothing

    root = Logger.getLogger("")
    root.setLevel(Level.WARNING)
    global _java_log_filter
    _java_log_filter = ToPythonLogging()
    for handler in root.getHandlers():
        handler.setLevel(Level.WARNING)
        handler.setFilter(_java_log_filter)


def causes(exc: Any) -> list[Any]:
    """A Java throwable and its causes (a JMSException may keep its cause as linked exception)."""
    chain: list[Any] = []
    while exc is not None and len(chain) < 10 and exc not in chain:
        chain.append(exc)
        cause = exc.getCause()
        exc = exc.getLinkedException() if cause is None and hasattr(exc, "getLinkedException") else cause
    return chain


def describe(exc: Any) -> str:
    """One line: the deepest cause that has a message, as ``SimpleClassName: message``."""
    for link in reversed(causes(exc)):
        message = link.getMessage()
        if message is not None and str(message).strip():
            return f"{link.getClass().getSimpleName()}: {' '.join(str(message).split())}"
    return str(exc.getClass().getName())
