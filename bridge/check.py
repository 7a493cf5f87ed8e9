"""``amq-bridge check``: validate the config, show what would be used, try every transport.

Prints the effective configuration as a user would write it (secrets as ``***``), the OpenWire
classpath with the version of each jar (read from its ``META-INF/MANIFEST.MF``, no JVM needed),
then connects and subscribes with each transport of ``transport_order`` and reports which works;
the result line is the last thing printed. The check connects under a
connection id of its own (``<connection_id>-check``), so a running bridge is not disturbed, and
with a prefetch of 0 it never receives or acknowledges anything: whatever the broker might still
hand it is redelivered to the bridge, not lost.

Exit status (see :func:`check`): 0 when the selected transport works, else 1.
"""

from __future__ import annotations

import sys
import time
import zipfile
from pathlib import Path
from typing import Any, Callable, TextIO

import yaml

from bridge import logs
from bridge.config import TRANSPORTS, BridgeConfig
from bridge.errors import AuthenticationError, BridgeError
from bridge.transports import Hooks, create_transport

CHECK_SUFFIX = "-check"
_VERSION_KEYS = ("Implementation-Version", "Bundle-Version")


def check(config: BridgeConfig, out: TextIO | None = None) -> int:
    """Run every check and print the report to ``out`` (stdout by default), secrets redacted.

    Returns:
        0 if the selected transport (``config.transport``) connected and subscribed, else 1.
    """
    stream = out or sys.stdout
    for secret in config.secrets:
        logs.register_secret(secret)

    def say(text: str = "") -> None:
        print(logs.redact(text), file=stream, flush=True)

    say(f"config {config.source}: valid")
    say()
    say("effective config:")
    for line in effective_config(config).splitlines():
        say(f"  {line}")
    say()
    for line in classpath_report(config):
        say(line)
    say()
    results = check_transports(config, say)
    logs.close()  # the clients' threads may still log (failover retries): nothing after the result
    say()
    selected = config.transport
    if results.get(selected):
        say(f"result: ok, the selected transport {selected} works")
        return 0
    working = [name for name, ok in results.items() if ok]
    also = f" ({', '.join(working)} works)" if working else ""
    say(f"result: FAILED, the selected transport {selected} does not work{also}")
    return 1


def effective_config(config: BridgeConfig) -> str:
    """The configuration as the user would write it, defaults filled in: the keys of the chosen
    sink only, no section of a transport that is not tried, no ``tls`` that is off, nothing that
    is not set (``None``, an empty password), secrets ``***``."""
    data = _given(config.model_dump(mode="json", exclude_none=True))
    if config.subscription.namespace is not None:
        del data["subscription"]["destination"]  # the queue of namespace + destination_id
    if config.subscription.destination.kind == "queue":
        del data["subscription"]["durable"]  # for topics only
    for name in TRANSPORTS:
        if name not in config.transport_order:
            del data[name]
        elif not getattr(config, name).tls.enabled:
            del data[name]["tls"]
    return logs.redact(yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=120))


def _given(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without the empty strings (a password or user name not set) and sections left empty."""
    given = {key: _given(value) if isinstance(value, dict) else value for key, value in data.items()}
    return {key: value for key, value in given.items() if value not in ("", {})}


def jar_version(path: Path) -> str | None:
    """The version in a jar's ``META-INF/MANIFEST.MF`` (Implementation-Version, else
    Bundle-Version), or ``None`` when it has none or cannot be read."""
    try:
        with zipfile.ZipFile(path) as jar:
            text = jar.read("META-INF/MANIFEST.MF").decode("utf-8", errors="replace")
    except (OSError, KeyError, zipfile.BadZipFile):
        return None
    attributes: dict[str, str] = {}
    name = None
    for line in text.splitlines():
        if line.startswith(" ") and name is not None:  # a continuation line (72-byte wrapping)
            attributes[name] += line[1:]
            continue
        if not line.strip():
            if attributes:
                break  # the main section ends at the first blank line
            continue
        key, sep, value = line.partition(":")
        if sep:
            name = key.strip()
            attributes[name] = value.strip()
    for key in _VERSION_KEYS:
        if attributes.get(key):
            return attributes[key].strip()
    return None


def classpath_report(config: BridgeConfig) -> list[str]:
    """Lines describing the OpenWire client classpath: each jar, present or MISSING, and its version."""
    from bridge import jvm  # no JPype import: only the manifest reader

    jars_dir = config.openwire.jars_dir
    lines = [f"classpath (openwire client jars, {jars_dir / jvm.MANIFEST}):"]
    try:
        manifest = [jar for jar in jvm.read_manifest(jars_dir) if jar.group == "client"]
    except BridgeError as exc:
        return [*lines, f"  MISSING: {_one_line(exc)}"]
    missing = 0
    for jar in manifest:
        path = jars_dir / jar.name
        if path.is_file():
            lines.append(f"  {path}  present  version {jar_version(path) or 'unknown'}")
        else:
            missing += 1
            lines.append(f"  {path}  MISSING (Debian package {jar.package})")
    for entry in config.openwire.classpath:
        if entry.exists():
            version = jar_version(entry) if entry.is_file() else None
            lines.append(f"  {entry}  present (extra entry)" + (f"  version {version}" if version else ""))
        else:
            missing += 1
            lines.append(f"  {entry}  MISSING (extra entry)")
    if missing:
        lines.append(f"  {missing} missing; {jvm.SETUP_HINT}")
    return lines


class _Seen(Hooks):
    """Remembers the endpoint a transport reported connected to."""

    def __init__(self) -> None:
        self.endpoint = ""

    def on_connected(self, transport: str, endpoint: str) -> None:
        self.endpoint = endpoint


def check_config(config: BridgeConfig) -> BridgeConfig:
    """The config the check connects with: its own connection id and a prefetch of 0, so it
    neither disturbs a running bridge nor takes events off the queue."""
    # prefetch 0 is below the minimum the config accepts for a bridge; the check builds it here,
    # past validation, on purpose: the broker then pushes nothing to a consumer that never pulls.
    return config.model_copy(update={
        "subscription": config.subscription.model_copy(
            update={"connection_id": config.subscription.connection_id + CHECK_SUFFIX}),
        "openwire": config.openwire.model_copy(update={"prefetch": 0}),
        "stomp": config.stomp.model_copy(update={"prefetch": 0}),
    })


def check_transports(config: BridgeConfig, say: Callable[[str], None]) -> dict[str, bool]:
    """Connect and subscribe with each transport in order, then close; report each on ``say``."""
    probe = check_config(config)
    destination = config.subscription.destination
    say(f"transports (in order {', '.join(config.transport_order)}; connection id "
        f"{probe.subscription.connection_id!r}, prefetch 0, nothing received or acknowledged: "
        "any event the broker hands the check is redelivered, not lost):")
    results: dict[str, bool] = {}
    for name in config.transport_order:
        role = "selected" if name == config.transport else "fallback"
        hooks, transport = _Seen(), None
        started = time.monotonic()
        try:
            transport = create_transport(name, probe, hooks)
            transport.connect(config.connect_timeout)
            # never durably: a durable subscription of the check's own connection id would stay on
            # the broker, filling up; the selector is checked all the same
            selector = config.subscription.selector
            transport.subscribe(destination, **({"selector": selector} if selector else {}))
            elapsed = time.monotonic() - started
            endpoint = hooks.endpoint or _configured_endpoint(name, config)
            results[name] = True
            say(f"  {name} ({role}): ok (connected to {endpoint}, subscribed to {destination} in {elapsed:.2f} s)")
        except Exception as exc:  # every failure is one line of the report, never a traceback
            results[name] = False
            say(f"  {name} ({role}): FAILED: {_one_line(exc)}")
        finally:
            if transport is not None:
                transport.close()
    return results


def _configured_endpoint(name: str, config: BridgeConfig) -> str:
    if name == "openwire":
        from bridge.transports.openwire.url import shown

        return shown(config.openwire.urls)
    return ", ".join(f"{host}:{port}" for host, port in config.stomp.hosts)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, AuthenticationError):
        text = f"authentication failed: {text}"
    elif not isinstance(exc, BridgeError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return logs.redact(text)
