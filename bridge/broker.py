"""An embedded ActiveMQ broker for development and tests (``amq-bridge broker``).

It runs ActiveMQ Classic's ``BrokerService`` inside this process's JVM (through JPype) with:

- an OpenWire and a STOMP connector on a loopback address (port 0 picks a free port; the
  real ports are read back from the bound server sockets); optionally also ``ssl://`` and
  ``stomp+ssl://`` connectors with a key store (and client certificates required when a
  client CA is given);
- the AtData fan-out rule: a virtual topic ``RTO.>`` with consumer prefix ``*.``, so a message
  sent to topic ``RTO.<ns>`` is copied into every existing queue ``<anything>.RTO.<ns>``
  (ActiveMQ's stock ``VirtualTopic.>`` rule is kept as well);
- simple username/password authentication when users are given (wrong credentials refused);
- queues created at start, so a consumer queue exists before anything is published;
- no JMX and no ActiveMQ shutdown hook: :meth:`EmbeddedBroker.stop` is the only way down.

The JVM cannot be restarted; a process runs at most one embedded broker at a time, and tests
that restart a broker run it in a child process.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import shutil
import signal
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge import jvm
from bridge.config import DEFAULT_JARS_DIR, TlsConfig
from bridge.errors import BridgeError, ConfigError, TransportUnavailableError

log = logging.getLogger(__name__)

#: The broker name of the embedded broker (one per JVM).
BROKER_NAME = "amq-bridge-embedded"

_running: "weakref.WeakSet[EmbeddedBroker]" = weakref.WeakSet()


@dataclass(frozen=True, slots=True)
class BrokerOptions:
    """How to run the embedded broker.

    Attributes:
        host: The address both connectors listen on (keep it on loopback).
        openwire_port: The OpenWire port; 0 picks any free port.
        stomp_port: The STOMP port; 0 picks any free port.
        persistent: Keep messages in KahaDB under ``data_dir`` (else in memory only).
        data_dir: Where KahaDB and temporary files live. ``None``: a temporary directory that is
            removed at stop, or ``./activemq-data`` (ActiveMQ's own default) when persistent.
        users: ``(username, password)`` pairs; empty means no authentication at all.
        queues: Queue names created at start.
        jars_dir: The folder holding the ActiveMQ jars and their manifest.
        ssl_port: The OpenWire-over-TLS (``ssl://``) port; None: no such connector, 0: any free.
        stomp_ssl_port: The STOMP-over-TLS (``stomp+ssl://``) port; None: none, 0: any free.
        tls: The broker's identity (``key_store`` + password) for the TLS connectors; with
            ``ca_file`` or ``trust_store`` as well, clients must present a certificate it signed.
        shared_store: Shared-store master/slave: when another broker holds ``data_dir``'s lock,
            wait for it (a slave) instead of failing, and open the connectors only once the lock
            is ours. Needs ``persistent``.
    """

    host: str = "127.0.0.1"
    openwire_port: int = 61616
    stomp_port: int = 61613
    persistent: bool = False
    data_dir: Path | None = None
    users: tuple[tuple[str, str], ...] = ()
    queues: tuple[str, ...] = ()
    jars_dir: Path = DEFAULT_JARS_DIR
    ssl_port: int | None = None
    stomp_ssl_port: int | None = None
    tls: TlsConfig | None = None
    shared_store: bool = False

    @property
    def need_client_auth(self) -> bool:
        """Whether TLS clients must present a certificate (a client CA was given)."""
        return self.tls is not None and (self.tls.ca_file is not None or self.tls.trust_store is not None)

    def __repr__(self) -> str:  # passwords never appear in logs or tracebacks
        users = tuple(name for name, _ in self.users)
        return (f"BrokerOptions(host={self.host!r}, openwire_port={self.openwire_port}, "
                f"stomp_port={self.stomp_port}, persistent={self.persistent}, "
                f"data_dir={self.data_dir!r}, users={users!r}, queues={self.queues!r}, "
                f"ssl_port={self.ssl_port}, stomp_ssl_port={self.stomp_ssl_port}, tls={self.tls!r})")


class EmbeddedBroker:
    """An ActiveMQ broker inside this process; use as a context manager or start()/stop()."""

    def __init__(self, options: BrokerOptions | None = None) -> None:
        self.options = options or BrokerOptions()
        #: ``tcp://HOST:PORT`` with the port actually bound, set by :meth:`start`.
        self.openwire_url = ""
        #: ``stomp://HOST:PORT`` with the port actually bound, set by :meth:`start`.
        self.stomp_url = ""
        #: ``ssl://HOST:PORT`` when an OpenWire TLS connector was asked for, set by :meth:`start`.
        self.openwire_ssl_url = ""
        #: ``stomp+ssl://HOST:PORT`` when a STOMP TLS connector was asked for, set by :meth:`start`.
        self.stomp_ssl_url = ""
        self._service: Any = None
        self._temp_dir: Path | None = None

    @property
    def running(self) -> bool:
        """Whether the broker has been started and not stopped."""
        return self._service is not None

    def start(self) -> tuple[str, str]:
        """Start the broker and return ``(openwire_url, stomp_url)`` with the bound ports.

        Raises:
            TransportUnavailableError: Java, JPype or a broker jar is missing.
            BridgeError: The broker failed to start (for example, a port is taken).
        """
        if self._service is not None:
            return self.openwire_url, self.stomp_url
        opts = self.options
        jvm.ensure_jvm(jvm.classpath(opts.jars_dir, ("client", "broker")), groups=("client", "broker"))
        service = None
        try:
            service, openwire, stomp, secure = self._build(self._data_dir())
            service.start()
            if not service.waitUntilStarted(30_000):
                raise BridgeError("embedded broker did not start within 30 s")
        except Exception as exc:
            self._abandon(service)
            if isinstance(exc, BridgeError):
                raise
            raise BridgeError(f"embedded broker failed to start: {_one_line(exc)}") from exc
        self._service = service
        _register_exit_handler()
        _running.add(self)
        self.openwire_url = f"tcp://{opts.host}:{_bound_port(openwire)}"
        self.stomp_url = f"stomp://{opts.host}:{_bound_port(stomp)}"
        if "ssl" in secure:
            self.openwire_ssl_url = f"ssl://{opts.host}:{_bound_port(secure['ssl'])}"
        if "stomp+ssl" in secure:
            self.stomp_ssl_url = f"stomp+ssl://{opts.host}:{_bound_port(secure['stomp+ssl'])}"
        log.info("embedded broker started: openwire=%s stomp=%s%s%s persistent=%s authentication=%s%s",
                 self.openwire_url, self.stomp_url, f" openwire_ssl={self.openwire_ssl_url}" * bool(self.openwire_ssl_url),
                 f" stomp_ssl={self.stomp_ssl_url}" * bool(self.stomp_ssl_url), opts.persistent,
                 "on" if opts.users else "off", " client_certificates=required" * opts.need_client_auth)
        return self.openwire_url, self.stomp_url

    def stop(self) -> None:
        """Stop the broker and wait until it has stopped; safe to call twice, never raises."""
        service, self._service = self._service, None
        _running.discard(self)
        if service is not None:
            self._abandon(service)
            log.info("embedded broker stopped")

    def _abandon(self, service: Any) -> None:
        """Stop ``service`` (if any) and remove the temporary data directory; never raises."""
        try:
            if service is not None:
                service.stop()
                service.waitUntilStopped()
        except Exception as exc:  # a failing stop must not hide why we are stopping
            log.warning("embedded broker did not stop cleanly: %s", _one_line(exc))
        finally:
            self._cleanup_temp_dir()

    def __enter__(self) -> "EmbeddedBroker":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _data_dir(self) -> Path:
        opts = self.options
        if opts.data_dir is not None or opts.persistent:
            data_dir = (opts.data_dir or Path("activemq-data")).resolve()
            data_dir.mkdir(parents=True, exist_ok=True)
            return data_dir
        self._temp_dir = Path(tempfile.mkdtemp(prefix="amq-bridge-broker-"))
        return self._temp_dir

    def _cleanup_temp_dir(self) -> None:
        temp, self._temp_dir = self._temp_dir, None
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)

    def _build(self, data_dir: Path) -> tuple[Any, Any, Any, dict[str, Any]]:
        """Configure a BrokerService; returns it with its OpenWire and STOMP connectors and the TLS ones by scheme."""
        from jpype import JArray, JClass

        opts = self.options
        File = JClass("java.io.File")
        service = JClass("org.apache.activemq.broker.BrokerService")()
        service.setBrokerName(BROKER_NAME)
        service.setUseJmx(False)
        service.setUseShutdownHook(False)  # our signal handlers stop the broker, not the JVM's hook
        service.setSchedulerSupport(False)
        service.setDataDirectoryFile(File(str(data_dir)))
        service.setTmpDataDirectory(File(str(data_dir / "tmp_storage")))
        service.setPersistent(opts.persistent)
        if opts.persistent:
            kahadb = JClass("org.apache.activemq.store.kahadb.KahaDBPersistenceAdapter")()
            kahadb.setDirectory(File(str(data_dir / "kahadb")))
            locker = JClass("org.apache.activemq.store.SharedFileLocker")()
            if opts.shared_store:  # a slave: wait for the master's lock, check for it every second
                locker.setFailIfLocked(False)
                locker.setLockAcquireSleepInterval(1000)
                kahadb.setLockKeepAlivePeriod(2000)  # a master that lost its lock stops
            else:
                locker.setFailIfLocked(True)  # a second broker on the same data fails, not waits forever
            kahadb.setLocker(locker)
            service.setPersistenceAdapter(kahadb)
        # ActiveMQ warns when its default store limits (100 GB, 50 GB) exceed the free disk space.
        usable = int(File(str(data_dir)).getUsableSpace() * 0.9) or 1 << 30
        usage = service.getSystemUsage()
        for limit in (usage.getStoreUsage(), usage.getTempUsage()):
            limit.setLimit(min(int(limit.getLimit()), usable))
        service.setDestinationInterceptors(_fan_out_interceptors())
        if opts.users:
            _require_authentication_classes()
            User = JClass("org.apache.activemq.security.AuthenticationUser")
            users = JClass("java.util.ArrayList")()
            for name, password in opts.users:
                users.add(User(name, password, "users"))
            plugin = JClass("org.apache.activemq.security.SimpleAuthenticationPlugin")(users)
            plugin.setAnonymousAccessAllowed(False)
            service.setPlugins(JArray(JClass("org.apache.activemq.broker.BrokerPlugin"))([plugin]))
        if opts.queues:
            Queue = JClass("org.apache.activemq.command.ActiveMQQueue")
            destinations = [Queue(name) for name in opts.queues]
            service.setDestinations(JArray(JClass("org.apache.activemq.command.ActiveMQDestination"))(destinations))
        openwire = service.addConnector(f"tcp://{opts.host}:{opts.openwire_port}")
        stomp = service.addConnector(f"stomp://{opts.host}:{opts.stomp_port}")
        secure: dict[str, Any] = {}
        wanted = {scheme: port for scheme, port in (("ssl", opts.ssl_port), ("stomp+ssl", opts.stomp_ssl_port))
                  if port is not None}
        if wanted:
            if opts.tls is None or opts.tls.key_store is None:
                raise ConfigError("TLS connectors need a key store (the broker's certificate and key)", key="key_store")
            from bridge import tls

            service.setSslContext(tls.java_ssl_context(opts.tls, "broker"))  # before the connectors bind
            query = "?needClientAuth=true" if opts.need_client_auth else ""
            for scheme, port in wanted.items():
                secure[scheme] = service.addConnector(f"{scheme}://{opts.host}:{port}{query}")
        return service, openwire, stomp, secure


def _require_authentication_classes() -> None:
    """SimpleAuthenticationPlugin needs activemq-jaas.jar, which the client jars do not bring."""
    from jpype import JClass

    try:
        JClass("org.apache.activemq.jaas.GroupPrincipal")
    except Exception as exc:
        raise TransportUnavailableError(
            "broker authentication needs activemq-jaas.jar (Debian package libactivemq-java) "
            f"listed in the jar manifest (group broker); {jvm.SETUP_HINT}") from exc


@functools.cache
def _register_exit_handler() -> None:
    atexit.register(_stop_all)  # registered after JPype's own handler, so it runs before it


def _stop_all() -> None:
    """At exit, stop brokers the program left running: their threads would keep the JVM alive."""
    for broker in list(_running):
        broker.stop()


def _fan_out_interceptors() -> Any:
    """Virtual topics: the AtData rule ``RTO.>`` -> ``*.RTO.<ns>`` plus ActiveMQ's default one."""
    from jpype import JArray, JClass

    VirtualTopic = JClass("org.apache.activemq.broker.region.virtual.VirtualTopic")
    atdata = VirtualTopic()
    atdata.setName("RTO.>")
    atdata.setPrefix("*.")
    atdata.setSelectorAware(False)
    stock = VirtualTopic()  # as BrokerService's default: VirtualTopic.> read as Consumer.*.VirtualTopic.>
    stock.setName("VirtualTopic.>")
    interceptor = JClass("org.apache.activemq.broker.region.virtual.VirtualDestinationInterceptor")()
    interceptor.setVirtualDestinations(
        JArray(JClass("org.apache.activemq.broker.region.virtual.VirtualDestination"))([atdata, stock]))
    return JArray(JClass("org.apache.activemq.broker.region.DestinationInterceptor"))([interceptor])


def _bound_port(connector: Any) -> int:
    """The port a started TransportConnector listens on (the real one when 0 was asked)."""
    return int(connector.getServer().getSocketAddress().getPort())


def _one_line(exc: BaseException) -> str:
    """A Java or Python exception as one line, without a stack trace.

    ActiveMQ's outer messages say what failed ("Failed to bind to server socket: tcp://...
    due to: java.net.BindException: Address already in use"), so the outermost message wins.
    """
    cause: Any = exc
    for _ in range(10):
        text = cause.getMessage() if hasattr(cause, "getMessage") else str(cause)
        if text is not None and str(text).strip():
            return " ".join(str(text).split())
        cause = cause.getCause() if hasattr(cause, "getCause") else cause.__cause__
        if cause is None:
            break
    return type(exc).__name__


def serve(options: BrokerOptions) -> int:
    """Run the embedded broker until SIGINT or SIGTERM; the body of ``amq-bridge broker``.

    Prints one line to stdout once every connector listens::

        broker ready: openwire=tcp://127.0.0.1:61616 stomp=stomp://127.0.0.1:61613

    followed, on the same line, by `` openwire_ssl=ssl://HOST:PORT`` and
    `` stomp_ssl=stomp+ssl://HOST:PORT`` when those connectors were asked for.

    Must be called from the main thread (it installs signal handlers, restored on return).

    Returns:
        0 after a clean stop.

    Raises:
        TransportUnavailableError: Java, JPype or a broker jar is missing.
        BridgeError: The broker failed to start.
    """
    received: list[int] = []

    started = False

    def on_signal(signum: int, frame: object) -> None:
        if options.shared_store and not started:
            os._exit(0)  # a slave still waiting for the store's lock holds nothing to close
        # Only record it: stopping the broker from inside a signal handler could re-enter Java.
        received.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    broker = EmbeddedBroker(options)
    try:
        if options.shared_store:
            log.info("shared store %s: waiting for its lock if another broker holds it", options.data_dir)
        openwire_url, stomp_url = broker.start()
        started = True
        extra = "".join(f" {name}={url}" for name, url in (("openwire_ssl", broker.openwire_ssl_url),
                                                           ("stomp_ssl", broker.stomp_ssl_url)) if url)
        print(f"broker ready: openwire={openwire_url} stomp={stomp_url}{extra}", flush=True)
        while not received:
            time.sleep(0.1)  # polling a flag: Event.wait() from a signal handler can deadlock
        log.info("embedded broker stopping on %s", signal.Signals(received[0]).name)
    finally:
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


#: The environment variable ``amq-bridge broker --key-store`` reads the key store password from.
KEY_STORE_PASSWORD_ENV = "AMQ_BROKER_KEY_STORE_PASSWORD"


def tls_options(options: BrokerOptions, *, ssl_port: int | None, stomp_ssl_port: int | None,
                key_store: Path | None, client_ca: Path | None, environ: Any = None) -> BrokerOptions:
    """``options`` with the TLS flags of ``amq-bridge broker`` applied (the password comes from
    :data:`KEY_STORE_PASSWORD_ENV`, never from the command line, where other users can see it).

    Raises:
        ConfigError: A TLS port without a key store, or a key store without a TLS port.
    """
    import dataclasses
    import os

    if ssl_port is None and stomp_ssl_port is None and key_store is None and client_ca is None:
        return options
    if key_store is None:
        raise ConfigError("--ssl-port and --stomp-ssl-port need --key-store", key="--key-store")
    if ssl_port is None and stomp_ssl_port is None:
        raise ConfigError("--key-store needs --ssl-port or --stomp-ssl-port", key="--key-store")
    password = (os.environ if environ is None else environ).get(KEY_STORE_PASSWORD_ENV, "")
    tls = TlsConfig(enabled=True, key_store=key_store.resolve(), key_store_password=password,
                    ca_file=client_ca.resolve() if client_ca else None)
    return dataclasses.replace(options, ssl_port=ssl_port, stomp_ssl_port=stomp_ssl_port, tls=tls)
