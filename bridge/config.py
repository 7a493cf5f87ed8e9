"""Configuration: ``config.yaml`` parsed once into typed, frozen objects.

The rest of the program never reads raw YAML. Every invalid value raises :class:`ConfigError`
naming the file and the dotted key, e.g. ``config.yaml: credentials.username: must be 4-5 digits``.
Strings may reference environment variables as ``${NAME}``; an unset one is an error.
Relative paths are resolved against the directory of the configuration file.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from bridge.configsection import Section
from bridge.errors import ConfigError

TRANSPORTS = ("openwire", "stomp")
PROFILES = ("atdata", "generic")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JARS_DIR = PROJECT_ROOT / "jars"

log = logging.getLogger(__name__)

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*\Z")
_URL = re.compile(r"[a-z][a-z0-9+]*://[^\s/:]+:\d+([/?].*)?\Z")
_HOST_PORT = re.compile(r"(?P<host>[^\s:]+|\[[0-9a-fA-F:]+\]):(?P<port>\d+)\Z")


@dataclass(frozen=True, slots=True)
class Destination:
    """A broker destination: ``kind`` is ``queue`` or ``topic``."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> "Destination":
        """Parse ``queue:NAME`` or ``topic:NAME``; raises ``ValueError`` otherwise."""
        kind, sep, name = text.partition(":")
        if not sep or kind not in ("queue", "topic") or not name.strip():
            raise ValueError("must be queue:NAME or topic:NAME")
        return cls(kind, name)


@dataclass(frozen=True, slots=True)
class Credentials:
    """Broker credentials; the password never appears in ``repr``."""

    username: str = ""
    password: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class Subscription:
    """What to consume and under which identity.

    Attributes:
        destination: The queue (or topic) consumed.
        connection_id: The JMS client id of this process; stable across restarts.
        namespace: The feed namespace (AtData-style subscriptions), else ``None``.
        destination_id: The subscriber's destination id (AtData-style), else ``None``.
    """

    destination: Destination
    connection_id: str
    namespace: str | None = None
    destination_id: str | None = None

    @property
    def feed_topic(self) -> Destination | None:
        """The topic the feed is published to (``topic:RTO.<namespace>``), if AtData-style."""
        return Destination("topic", f"RTO.{self.namespace}") if self.namespace else None


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """TLS towards the broker (``openwire.tls``, ``stomp.tls``) or served by the embedded broker.

    Trust (who the broker may be): ``ca_file`` (PEM; ``system`` for the operating system's store)
    or ``trust_store`` (JKS or PKCS12). Identity (mutual TLS): ``cert_file`` + ``key_file`` (PEM)
    or ``key_store`` (JKS or PKCS12). Store types are taken from ``*_type`` or the file suffix.
    """

    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    key_password: str = field(default="", repr=False)
    trust_store: Path | None = None
    trust_store_password: str = field(default="", repr=False)
    trust_store_type: str | None = None
    key_store: Path | None = None
    key_store_password: str = field(default="", repr=False)
    key_store_type: str | None = None
    verify_hostname: bool = True
    #: No verification of the broker's certificate at all (warned about on every connect).
    insecure: bool = False

    @property
    def use_system_ca(self) -> bool:
        return self.ca_file is not None and self.ca_file.name == "system" and not self.ca_file.exists()


#: The JVM amq-bridge starts: a bounded heap; one collector thread (two cores are shared with the
#: broker client's threads and Python); a small young generation, so that each of its pauses
#: (the JVM's only ones here) stays short: 16 MB holds the prefetched messages with room to spare.
DEFAULT_JVM_OPTIONS = ("-Xmx256m", "-Xmn16m", "-XX:+UseSerialGC")


@dataclass(frozen=True, slots=True)
class OpenWireConfig:
    """Settings of the OpenWire (JMS client over JPype) transport."""

    urls: tuple[str, ...] = ("tcp://127.0.0.1:61616",)
    jars_dir: Path = DEFAULT_JARS_DIR
    classpath: tuple[Path, ...] = ()
    prefetch: int = 1000
    #: Options of the JVM when amq-bridge starts it (a host application's JVM is used as it is).
    jvm_options: tuple[str, ...] = DEFAULT_JVM_OPTIONS
    #: Inactivity monitoring (wireFormat.maxInactivityDuration) in ms; a silent connection is
    #: replaced within two to three times this. 0 turns it off.
    heartbeat_ms: int = 10000
    #: A ``javax.jms.ConnectionFactory`` class to use instead of ActiveMQ's own (found on the
    #: classpath; constructed with no arguments, then given the broker URL if it has setBrokerURL).
    connection_factory: str | None = None
    #: Used for ``ssl://`` URLs.
    tls: TlsConfig = TlsConfig()


@dataclass(frozen=True, slots=True)
class StompConfig:
    """Settings of the STOMP (stomp.py) transport."""

    hosts: tuple[tuple[str, int], ...] = (("127.0.0.1", 61613),)
    heartbeat_ms: int = 10000
    prefetch: int = 1000
    tls: TlsConfig = TlsConfig()


@dataclass(frozen=True, slots=True)
class ReconnectConfig:
    """How a lost or refused connection is retried: exponential backoff with jitter.

    Attributes:
        initial_delay: Seconds before the first retry.
        max_delay: The cap of the delay between retries, in seconds.
        max_attempts: Retries before giving up; 0 retries forever.
    """

    initial_delay: float = 0.5
    max_delay: float = 30.0
    max_attempts: int = 0


SINK_TYPES = ("stdout", "jsonl", "sqlite", "postgres", "handler")
FSYNC_POLICIES = ("never", "batch")


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """Where delivered events go: ``stdout``, ``jsonl``, ``sqlite``, ``postgres`` or ``handler``.

    Attributes:
        fsync: ``batch``: fsync (jsonl) or synchronous=FULL (sqlite) before each acknowledgement;
            ``never``: handed to the operating system (survives a crash of the process).
        rotate_bytes: The jsonl file is rotated when it would grow past this size (None: never).
        rotate_seconds: The jsonl file is rotated when it is older than this (None: never).
        keep: Rotated jsonl files kept (oldest removed first); 0 keeps all.
        url: The PostgreSQL connection string (``postgresql://user@host:port/db``); a secret.
        handler: ``package.module:function`` of the ``handler`` sink.
        mode: ``event``: the handler is called once per event; ``batch``: once per batch.
        max_attempts: Writes of one batch before it is dead-lettered; 0 retries forever.
        md5_index: The ``sqlite`` and ``postgres`` sinks keep an index on ``md5`` (fast lookups by
            md5, at most of the cost of a write); False creates none.
    """

    type: str = "stdout"
    path: Path | None = None
    fsync: str = "never"
    rotate_bytes: int | None = None
    rotate_seconds: float | None = None
    keep: int = 0
    url: str = field(default="", repr=False)
    handler: str | None = None
    mode: str = "batch"
    max_attempts: int = 0
    #: Table of the ``sqlite`` and ``postgres`` sinks.
    table: str = "events"
    md5_index: bool = True


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """The HTTP endpoint of ``/metrics``, ``/healthz`` and ``/readyz``; ``port`` None: off."""

    host: str = "127.0.0.1"
    port: int | None = None


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    """The whole configuration of one bridge process."""

    subscription: Subscription
    transport: str = "openwire"
    fallback: tuple[str, ...] = ()
    profile: str = "atdata"
    connect_timeout: float = 10.0
    credentials: Credentials = Credentials()
    openwire: OpenWireConfig = OpenWireConfig()
    stomp: StompConfig = StompConfig()
    sink: SinkConfig = SinkConfig()
    reconnect: ReconnectConfig = ReconnectConfig()
    metrics: MetricsConfig = MetricsConfig()
    dead_letter: Path | None = None
    #: Consumer processes (``amq-bridge run``); worker i uses connection id ``<connection_id>-<i>``.
    workers: int = 1
    max_message_bytes: int = 1024 * 1024
    batch_size: int = 500
    #: Message ids remembered to keep redeliveries out of the sink; 0 turns it off.
    dedupe_window: int = 10000
    #: Seconds a graceful stop may take before the process exits without acknowledging the rest.
    shutdown_timeout: float = 30.0
    stats_interval: float = 5.0
    source: str = "<config>"
    #: Keys whose secret is written in the file itself rather than referenced.
    inline_secrets: tuple[str, ...] = ()

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value in this configuration (to be redacted from all output)."""
        values = [self.credentials.password, self.sink.url, _url_password(self.sink.url)]
        for tls in (self.openwire.tls, self.stomp.tls):
            values += [tls.key_password, tls.trust_store_password, tls.key_store_password]
        return tuple(v for v in dict.fromkeys(values) if v)

    @property
    def transport_order(self) -> tuple[str, ...]:
        """The selected transport followed by its fallbacks, without repeats."""
        return tuple(dict.fromkeys((self.transport, *self.fallback)))


def _url_password(url: str) -> str:
    """The password part of ``scheme://user:password@host/...`` or of a ``password=...`` keyword."""
    match = re.match(r"[a-z][a-z0-9+.-]*://[^:/@]*:([^@/]*)@", url) or re.search(r"\bpassword\s*=\s*'?([^'\s]+)", url)
    return match.group(1) if match else ""


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> BridgeConfig:
    """Read and validate a YAML configuration file.

    Raises:
        ConfigError: The file cannot be read or any value is invalid.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read file ({exc.strerror})", source=source) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"not valid YAML{where}", source=source) from exc
    config = parse_config(raw, source=source, base_dir=Path(path).resolve().parent, env=env)
    _warn_inline_secrets(Path(path), config)
    return config


def _warn_inline_secrets(path: Path, config: BridgeConfig) -> None:
    """Warn when a password is written in a file that other users can read."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & 0o044 and config.inline_secrets:
        log.warning("%s: %s written inline in a file other users can read (mode %03o); use ${ENV_VAR} or "
                    "${file:/path}, or chmod 600 it", path, ", ".join(config.inline_secrets), mode & 0o777)


def parse_config(
    raw: Any,
    *,
    source: str = "<config>",
    base_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> BridgeConfig:
    """Validate an already-loaded mapping (YAML document or dict) into a :class:`BridgeConfig`."""
    top = Section(raw if raw is not None else {}, source, "", base_dir or Path.cwd(),
                   os.environ if env is None else env)
    profile = top.choice("profile", PROFILES, "atdata")
    transport = top.choice("transport", TRANSPORTS, "openwire")
    fallback = tuple(top.list("fallback", lambda v, k: top.check_choice(v, k, TRANSPORTS)))
    credentials = top.section("credentials")
    config = BridgeConfig(
        transport=transport,
        fallback=fallback,
        profile=profile,
        connect_timeout=top.number("connect_timeout", 10.0, minimum=0.1),
        credentials=_credentials(credentials, profile),
        subscription=_subscription(top.section("subscription"), profile),
        openwire=_openwire(top.section("openwire")),
        stomp=_stomp(top.section("stomp")),
        sink=_sink(top.section("sink")),
        reconnect=_reconnect(top.section("reconnect")),
        metrics=_metrics(top.section("metrics")),
        dead_letter=top.path("dead_letter", None),
        workers=int(top.number("workers", 1, minimum=1, integer=True)),
        max_message_bytes=int(top.number("max_message_bytes", 1024 * 1024, minimum=1, integer=True)),
        batch_size=int(top.number("batch_size", 500, minimum=1, integer=True)),
        dedupe_window=int(top.number("dedupe_window", 10000, minimum=0, integer=True)),
        shutdown_timeout=top.number("shutdown_timeout", 30.0, minimum=0.1),
        stats_interval=top.number("stats_interval", 5.0, minimum=0),
        source=source,
        inline_secrets=tuple(top.inline_secrets),
    )
    top.done()
    if config.sink.max_attempts and config.dead_letter is None:
        top.fail("dead_letter", f"is required when sink.max_attempts is set (a batch given up on is set aside there)")
    return config


def _credentials(sec: Section, profile: str) -> Credentials:
    username = sec.string("username", "")
    password = sec.string("password", "", secret=True)
    sec.done()
    if profile == "atdata":
        if not re.fullmatch(r"\d{4,5}", username):
            sec.fail("username", "must be 4-5 digits (AtData profile; set profile: generic for other brokers)")
        if not re.fullmatch(r"[0-9a-fA-F]{32}", password):
            sec.fail("password", "must be 32 hexadecimal characters (AtData profile; set profile: generic for other brokers)")
    return Credentials(username, password)


def _subscription(sec: Section, profile: str) -> Subscription:
    namespace = sec.string("namespace", "")
    destination_id = sec.string("destination_id", "")
    destination = sec.string("destination", "")
    connection_id = sec.string("connection_id", "")
    sec.done()
    if not connection_id:
        sec.fail("connection_id", "is required (the JMS client id of this process; keep it stable across restarts)")
    if not _ID.match(connection_id):
        sec.fail("connection_id", "may hold only letters, digits and . _ : - and must start with a letter or digit")
    if destination:
        if namespace or destination_id:
            sec.fail("destination", "give either destination or namespace + destination_id, not both")
        try:
            dest = Destination.parse(destination)
        except ValueError as exc:
            sec.fail("destination", str(exc))
        return Subscription(dest, connection_id)
    if not namespace:
        sec.fail("namespace", "is required (or give destination: queue:NAME / topic:NAME)")
    if not destination_id:
        sec.fail("destination_id", "is required (the queue is <destination_id>.RTO.<namespace>)")
    if profile == "atdata" and not (namespace.isascii() and namespace.isalnum()):
        sec.fail("namespace", "must be alphanumeric (AtData profile)")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", namespace):
        sec.fail("namespace", "may hold only letters, digits, _ and -")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", destination_id):
        sec.fail("destination_id", "may hold only letters, digits, _ and -")
    queue = Destination("queue", f"{destination_id}.RTO.{namespace}")
    return Subscription(queue, connection_id, namespace, destination_id)


def _openwire(sec: Section) -> OpenWireConfig:
    def url(value: Any, key: str) -> str:
        text = sec.check_string(value, key)
        if not _URL.match(text):
            sec.fail(key, f"{text!r} is not a broker URL like tcp://HOST:PORT")
        return text

    urls = tuple(sec.list("urls", url, default=["tcp://127.0.0.1:61616"]))
    if not urls:
        sec.fail("urls", "needs at least one broker URL")
    config = OpenWireConfig(
        urls=urls,
        jars_dir=sec.path("jars_dir", DEFAULT_JARS_DIR),
        classpath=tuple(sec.list("classpath", lambda v, k: sec.resolve(sec.check_string(v, k)))),
        prefetch=int(sec.number("prefetch", 1000, minimum=1, integer=True)),
        heartbeat_ms=int(sec.number("heartbeat_ms", 10000, minimum=0, integer=True)),
        jvm_options=tuple(sec.list("jvm_options", sec.check_string, default=list(DEFAULT_JVM_OPTIONS))),
        connection_factory=sec.string("connection_factory", "") or None,
        tls=_tls(sec.section("tls"), default_enabled=any(u.startswith("ssl://") for u in urls)),
    )
    sec.done()
    if config.connection_factory and not re.fullmatch(r"[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)+", config.connection_factory):
        sec.fail("connection_factory", "must be a fully qualified Java class name, like com.example.MyFactory")
    return config


def _tls(sec: Section, default_enabled: bool = False) -> TlsConfig:
    given = sec.get("enabled") is not None or any(sec.get(k) is not None for k in (
        "ca_file", "trust_store", "cert_file", "key_store", "insecure"))
    config = TlsConfig(
        enabled=sec.boolean("enabled", default_enabled or given),
        ca_file=sec.path("ca_file", None),
        cert_file=sec.path("cert_file", None),
        key_file=sec.path("key_file", None),
        key_password=sec.string("key_password", "", secret=True),
        trust_store=sec.path("trust_store", None),
        trust_store_password=sec.string("trust_store_password", "", secret=True),
        trust_store_type=sec.string("trust_store_type", "") or None,
        key_store=sec.path("key_store", None),
        key_store_password=sec.string("key_store_password", "", secret=True),
        key_store_type=sec.string("key_store_type", "") or None,
        verify_hostname=sec.boolean("verify_hostname", True),
        insecure=sec.boolean("insecure", False),
    )
    sec.done()
    if config.ca_file and config.trust_store:
        sec.fail("trust_store", "give either ca_file or trust_store, not both")
    if bool(config.cert_file) != bool(config.key_file):
        sec.fail("cert_file" if config.key_file else "key_file", "cert_file and key_file go together")
    if config.cert_file and config.key_store:
        sec.fail("key_store", "give either cert_file + key_file or key_store, not both")
    for key in ("trust_store_type", "key_store_type"):
        value = getattr(config, key)
        if value is not None and value.upper() not in ("JKS", "PKCS12"):
            sec.fail(key, "must be JKS or PKCS12")
    return config


def _metrics(sec: Section) -> MetricsConfig:
    host = sec.string("host", "127.0.0.1")
    port = sec.get("port")
    if port is not None:
        port = int(sec.number("port", 0, minimum=0, integer=True))
        if port > 65535:
            sec.fail("port", "must be at most 65535")
    sec.done()
    return MetricsConfig(host, port)


def _reconnect(sec: Section) -> ReconnectConfig:
    config = ReconnectConfig(
        initial_delay=sec.number("initial_delay", 0.5, minimum=0.01),
        max_delay=sec.number("max_delay", 30.0, minimum=0.01),
        max_attempts=int(sec.number("max_attempts", 0, minimum=0, integer=True)),
    )
    sec.done()
    if config.max_delay < config.initial_delay:
        sec.fail("max_delay", "must not be less than initial_delay")
    return config


def _stomp(sec: Section) -> StompConfig:
    def host_port(value: Any, key: str) -> tuple[str, int]:
        text = sec.check_string(value, key)
        match = _HOST_PORT.match(text)
        if not match or not 0 < int(match["port"]) < 65536:
            sec.fail(key, f"{text!r} is not HOST:PORT")
        return match["host"].strip("[]"), int(match["port"])

    hosts = tuple(sec.list("hosts", host_port, default=["127.0.0.1:61613"]))
    if not hosts:
        sec.fail("hosts", "needs at least one HOST:PORT")
    config = StompConfig(
        hosts=hosts,
        heartbeat_ms=int(sec.number("heartbeat_ms", 10000, minimum=0, integer=True)),
        prefetch=int(sec.number("prefetch", 1000, minimum=1, integer=True)),
        tls=_tls(sec.section("tls")),
    )
    sec.done()
    tls = config.tls
    if tls.enabled and not tls.insecure and tls.ca_file is None and tls.trust_store is None:
        sec.fail("tls.ca_file", "is required to verify the broker (a PEM file, or 'system' for the operating "
                 "system's store); set tls.insecure: true to connect without verification")
    if tls.trust_store or tls.key_store:
        sec.fail("tls.trust_store" if tls.trust_store else "tls.key_store",
                 "Java key stores are for openwire; stomp takes ca_file, cert_file and key_file (PEM)")
    return config


def _sink(sec: Section) -> SinkConfig:
    kind = sec.choice("type", SINK_TYPES, "stdout")
    path = sec.path("path", None)
    fsync_raw = sec.get("fsync")
    if isinstance(fsync_raw, bool):  # true / false read as batch / never
        fsync = "batch" if fsync_raw else "never"
    else:
        fsync = sec.choice("fsync", FSYNC_POLICIES, "never")
    rotate_bytes = sec.get("rotate_bytes")
    rotate_seconds = sec.get("rotate_seconds")
    config = SinkConfig(
        type=kind,
        path=path,
        fsync=fsync,
        rotate_bytes=None if rotate_bytes is None else int(sec.number("rotate_bytes", 0, minimum=1, integer=True)),
        rotate_seconds=None if rotate_seconds is None else sec.number("rotate_seconds", 0, minimum=1),
        keep=int(sec.number("keep", 0, minimum=0, integer=True)),
        # a secret only when it holds a password (postgresql://user@host/db is fine inline)
        url=sec.string("url", "", secret=isinstance(sec.get("url"), str) and bool(_url_password(sec.get("url")))),
        handler=sec.string("handler", "") or None,
        mode=sec.choice("mode", ("event", "batch"), "batch"),
        max_attempts=int(sec.number("max_attempts", 5 if kind == "handler" else 0, minimum=0, integer=True)),
        table=sec.string("table", "events"),
        md5_index=sec.boolean("md5_index", True),
    )
    sec.done()
    if kind in ("jsonl", "sqlite") and path is None:
        sec.fail("path", f"is required for the {kind} sink")
    if kind == "postgres" and not config.url:
        sec.fail("url", "is required for the postgres sink (postgresql://USER@HOST:PORT/DATABASE; "
                 "put the password in ${ENV_VAR} or PGPASSWORD)")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", config.table):
        sec.fail("table", "must be a plain SQL name (letters, digits, _)")
    if kind == "handler" and not (config.handler and re.fullmatch(r"[\w.]+:[\w.]+", config.handler)):
        sec.fail("handler", "is required for the handler sink, as package.module:function")
    return config
