"""TLS from a :class:`~bridge.config.TlsConfig` (or a stomp :class:`~bridge.config.PemTlsConfig`): an ``ssl.SSLContext`` for STOMP, Java key and
trust managers for OpenWire and the embedded broker, and one vocabulary for what went wrong.

Trust: ``ca_file`` (PEM; ``system`` for the operating system's store), ``trust_store`` (JKS or
PKCS12, Java only), else the default of the runtime (Python: the system store; Java: its
``cacerts``). Identity (mutual TLS): ``cert_file`` + ``key_file`` (PEM; for Java the key must
be unencrypted PKCS#8, ``-----BEGIN PRIVATE KEY-----``) or ``key_store`` (Java only).
``insecure: true`` trusts any certificate for any host, with a warning on every connect.

A handshake failure becomes a :class:`~bridge.errors.ConnectError` whose message starts with
``TLS:`` and names the cause: an untrusted certificate, a host name mismatch, a refused client
certificate. Java classes are loaded only by the ``java_*`` functions (after the JVM is up).
"""

from __future__ import annotations

import base64
import functools
import logging
import re
import socket
import ssl
from pathlib import Path
from typing import Any, Iterable

from bridge import jvm
from bridge.config import PemTlsConfig, TlsConfig
from bridge.errors import ConfigError, ConnectError

log = logging.getLogger(__name__)

UNTRUSTED = "the broker's certificate is not trusted"
HOST_MISMATCH = "the broker's certificate does not match host"
CLIENT_REFUSED = "the broker refused the client certificate"
GENERIC = "TLS: handshake failed"
_PEM_KEY = re.compile(r"-----BEGIN PRIVATE KEY-----(.+?)-----END PRIVATE KEY-----", re.S)


def warn_insecure(transport: str, endpoint: str) -> None:
    """The warning logged on every connect with ``tls.insecure: true``."""
    log.warning("%s: TLS to %s WITHOUT verifying the broker's certificate (tls.insecure: true); anyone on the "
                "path can read and change the traffic", transport, endpoint)


# --- Python (STOMP) -------------------------------------------------------------------------------

def ssl_context(tls: PemTlsConfig) -> ssl.SSLContext:
    """A client ``SSLContext``: verifies the broker (unless insecure), presents cert_file if given.

    Raises:
        ConfigError: A file cannot be read or does not hold what it should.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if tls.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context.check_hostname = tls.verify_hostname
            if tls.ca_file is None or tls.use_system_ca:
                context.load_default_certs(ssl.Purpose.SERVER_AUTH)
            else:
                context.load_verify_locations(cafile=str(tls.ca_file))
        if tls.cert_file is not None:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file), password=tls.key_password or None)
    except (OSError, ssl.SSLError) as exc:
        key = "cert_file" if tls.cert_file is not None and "ca_file" not in str(exc) else "ca_file"
        raise ConfigError(f"cannot load TLS material: {exc.strerror or exc}", key=f"stomp.tls.{key}") from exc
    return context


def wrap(sock: socket.socket, host: str, tls: PemTlsConfig, timeout: float, *, endpoint: str = "",
         transport: str = "stomp") -> ssl.SSLSocket:
    """TLS handshake on a connected ``sock`` within ``timeout`` s; closes ``sock`` on failure.

    Raises:
        ConnectError: The handshake failed; the message names the cause (see module docstring).
        ConfigError: The certificate files cannot be loaded.
    """
    if not endpoint:
        port = sock.getpeername()[1]
        endpoint = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        context = _cached_context(tls)
        if tls.insecure:
            warn_insecure(transport, endpoint)
        sock.settimeout(timeout)
        wrapped = context.wrap_socket(sock, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        sock.close()
        raise ConnectError(f"{endpoint} ({describe_python(exc, host)})") from exc
    except (ssl.SSLError, OSError) as exc:
        sock.close()
        raise ConnectError(f"{endpoint} ({describe_python(exc, host)})") from exc
    except ConfigError:
        sock.close()
        raise
    wrapped.settimeout(None)
    return wrapped


@functools.lru_cache(maxsize=8)
def _cached_context(tls: PemTlsConfig) -> ssl.SSLContext:
    return ssl_context(tls)


def describe_python(exc: BaseException, host: str) -> str:
    """``TLS: <cause>`` for an error of Python's ssl module during a handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = exc.verify_message or str(exc)
        if "mismatch" in message.lower():
            return f"TLS: {HOST_MISMATCH} {host} ({message})"
        return f"TLS: {UNTRUSTED} ({message})"
    if isinstance(exc, ssl.SSLError):
        reason = (exc.reason or str(exc)).lower()
        if any(word in reason for word in ("bad_certificate", "certificate_required", "unknown_ca", "bad certificate")):
            return f"TLS: {CLIENT_REFUSED} ({exc.reason})"
        return f"TLS: handshake failed ({exc.reason or exc})"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "TLS: no handshake answer in time (is it a TLS port?)"
    if isinstance(exc, ConnectionError) or (isinstance(exc, OSError) and exc.errno):
        return f"TLS: the broker closed the connection during the handshake ({exc.strerror or exc}; is it a TLS port?)"
    return f"TLS: handshake failed ({exc or type(exc).__name__})"


# --- Java (OpenWire, embedded broker) -------------------------------------------------------------

def java_ssl_context(tls: TlsConfig, section: str = "openwire.tls") -> Any:
    """An ``org.apache.activemq.broker.SslContext`` (key and trust managers) for ``tls``.

    Raises:
        ConfigError: A store or PEM file cannot be loaded (the message names the key).
    """
    from jpype import JArray, JClass

    key_managers = _java_key_managers(tls, section)
    trust_managers = _java_trust_managers(tls, section)
    SslContext = JClass("org.apache.activemq.broker.SslContext")
    km = JArray(JClass("javax.net.ssl.KeyManager"))(key_managers) if key_managers is not None else None
    tm = JArray(JClass("javax.net.ssl.TrustManager"))(trust_managers) if trust_managers is not None else None
    return SslContext(km, tm, None)


def store_type(path: Path, given: str | None) -> str:
    """JKS or PKCS12: ``given``, else from the suffix (``.jks``; ``.p12``/``.pfx``), else PKCS12."""
    if given:
        return given.upper()
    return "JKS" if path.suffix.lower() in (".jks", ".keystore") else "PKCS12"


def _load_store(path: Path, password: str, kind: str | None, key: str) -> Any:
    from jpype import JClass, JException

    store = JClass("java.security.KeyStore").getInstance(store_type(path, kind))
    try:
        stream = JClass("java.io.FileInputStream")(str(path))
        try:
            store.load(stream, JClass("java.lang.String")(password).toCharArray() if password else None)
        finally:
            stream.close()
    except JException as exc:
        raise ConfigError(f"cannot load {path} as a {store_type(path, kind)} store ({jvm.describe(exc)}); "
                          "check the file, its type and its password", key=key) from None
    return store


def _java_key_managers(tls: TlsConfig, section: str) -> list[Any] | None:
    from jpype import JClass

    KMF = JClass("javax.net.ssl.KeyManagerFactory")
    if tls.key_store is not None:
        store = _load_store(tls.key_store, tls.key_store_password, tls.key_store_type, f"{section}.key_store")
        password = tls.key_password or tls.key_store_password
    elif tls.cert_file is not None:
        store, password = _pem_key_store(tls, section), "amq-bridge"
    else:
        return None
    factory = KMF.getInstance(KMF.getDefaultAlgorithm())
    factory.init(store, JClass("java.lang.String")(password).toCharArray() if password else None)
    return list(factory.getKeyManagers())


def _java_trust_managers(tls: TlsConfig, section: str) -> list[Any] | None:
    from jpype import JClass

    if tls.insecure:
        return [_trust_all_class()()]
    if tls.trust_store is not None:
        store = _load_store(tls.trust_store, tls.trust_store_password, tls.trust_store_type, f"{section}.trust_store")
    elif tls.ca_file is not None and not tls.use_system_ca:
        store = _pem_trust_store(tls.ca_file, f"{section}.ca_file")
    else:
        return None  # the JVM's default (cacerts)
    TMF = JClass("javax.net.ssl.TrustManagerFactory")
    factory = TMF.getInstance(TMF.getDefaultAlgorithm())
    factory.init(store)
    return list(factory.getTrustManagers())


def _certificates(path: Path, key: str) -> list[Any]:
    from jpype import JClass, JException

    try:
        stream = JClass("java.io.FileInputStream")(str(path))
        try:
            certs = list(JClass("java.security.cert.CertificateFactory").getInstance("X.509").generateCertificates(stream))
        finally:
            stream.close()
    except JException as exc:
        raise ConfigError(f"cannot read certificates from {path} ({jvm.describe(exc)})", key=key) from None
    if not certs:
        raise ConfigError(f"{path} holds no PEM certificate", key=key)
    return certs


def _pem_trust_store(path: Path, key: str) -> Any:
    from jpype import JClass

    store = JClass("java.security.KeyStore").getInstance("PKCS12")
    store.load(None, None)
    for index, cert in enumerate(_certificates(path, key)):
        store.setCertificateEntry(f"ca-{index}", cert)
    return store


def _pem_key_store(tls: TlsConfig, section: str) -> Any:
    """An in-memory key store from cert_file + key_file (unencrypted PKCS#8 only)."""
    from jpype import JArray, JByte, JClass, JException

    assert tls.cert_file is not None and tls.key_file is not None
    try:
        text = tls.key_file.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise ConfigError(f"cannot read {tls.key_file} ({exc.strerror})", key=f"{section}.key_file") from None
    match = _PEM_KEY.search(text)
    if match is None:
        raise ConfigError(f"{tls.key_file}: openwire needs an unencrypted PKCS#8 key (-----BEGIN PRIVATE KEY-----); "
                          "convert it with 'openssl pkcs8 -topk8 -nocrypt', or give tls.key_store (PKCS12/JKS)",
                          key=f"{section}.key_file")
    der = base64.b64decode("".join(match.group(1).split()))
    spec = JClass("java.security.spec.PKCS8EncodedKeySpec")(JArray(JByte)(der))
    key = None
    for algorithm in ("RSA", "EC", "Ed25519", "DSA"):
        try:
            key = JClass("java.security.KeyFactory").getInstance(algorithm).generatePrivate(spec)
            break
        except JException:
            continue
    if key is None:
        raise ConfigError(f"{tls.key_file}: not an RSA, EC, Ed25519 or DSA private key", key=f"{section}.key_file")
    chain = _certificates(tls.cert_file, f"{section}.cert_file")
    store = JClass("java.security.KeyStore").getInstance("PKCS12")
    store.load(None, None)
    store.setKeyEntry("client", key, JClass("java.lang.String")("amq-bridge").toCharArray(),
                      JArray(JClass("java.security.cert.Certificate"))(chain))
    return store


@functools.cache
def _trust_all_class() -> Any:
    import jpype

    @jpype.JImplements("javax.net.ssl.X509TrustManager")
    class TrustAll:
        """tls.insecure: accepts every certificate (the host name check is off in the URL too)."""

        @jpype.JOverride
        def checkClientTrusted(self, chain: Any, auth_type: Any) -> None:  # noqa: N802 - Java's name
            pass

        @jpype.JOverride
        def checkServerTrusted(self, chain: Any, auth_type: Any) -> None:  # noqa: N802 - Java's name
            pass

        @jpype.JOverride
        def getAcceptedIssuers(self) -> Any:  # noqa: N802 - Java's name
            return jpype.JArray(jpype.JClass("java.security.cert.X509Certificate"))(0)

    return TrustAll


def describe_java(messages: Iterable[tuple[str, str]], host: str = "") -> str | None:
    """``TLS: <cause>`` from ``(class simple name, message)`` pairs of a Java exception chain, else None."""
    pairs = [(name, " ".join((text or "").split())) for name, text in messages]
    joined = " | ".join(f"{name}: {text}" for name, text in pairs)
    lowered = joined.lower()
    if not any(word in lowered for word in ("ssl", "certificate", "pkix", "handshake", "tls")):
        return None
    detail = next((f"{name}: {text}" for name, text in reversed(pairs) if text), joined)
    if "no subject alternative" in lowered or "no name matching" in lowered:
        where = re.search(r"(?:matching(?: ip address| dns name)?|address) (\S+?)(?: found|$)", joined, re.I)
        return f"TLS: {HOST_MISMATCH} {where.group(1) if where else host} ({detail})"
    if "pkix" in lowered or "unable to find valid certification path" in lowered or "certpath" in lowered:
        return f"TLS: {UNTRUSTED} (PKIX path building failed: {detail})"
    if "bad_certificate" in lowered or "certificate_required" in lowered or "unknown_ca" in lowered:
        return f"TLS: {CLIENT_REFUSED} ({detail})"
    if "plaintext connection" in lowered or "unrecognized ssl message" in lowered:
        return f"TLS: the port does not speak TLS ({detail})"
    return f"{GENERIC} ({detail})"


def java_probe(ssl_context: Any, host: str, port: int, *, verify_hostname: bool, timeout: float) -> str | None:
    """``TLS: <cause>`` from one TLS handshake of our own with ``host:port``, else None.

    The ActiveMQ client reports a refused handshake by whichever of its threads fails first, so
    its own error often says only that the socket closed; this handshake, made the way the
    client makes it (same key and trust managers, host name checked as it checks it), tells why.
    After the handshake it reads briefly: a broker that refuses our client certificate says so
    only then (TLS 1.3).
    """
    from jpype import JClass, JException

    socket_ = None
    ms = max(100, int(timeout * 1000))
    try:
        context = ssl_context.getSSLContext() if ssl_context is not None else JClass("javax.net.ssl.SSLContext").getDefault()
        socket_ = context.getSocketFactory().createSocket()
        socket_.connect(JClass("java.net.InetSocketAddress")(host, port), ms)
        socket_.setSoTimeout(ms)
        if verify_hostname:
            params = socket_.getSSLParameters()
            params.setEndpointIdentificationAlgorithm("HTTPS")
            socket_.setSSLParameters(params)
        socket_.startHandshake()
        socket_.setSoTimeout(min(ms, 1000))
        try:
            socket_.getInputStream().read()
        except JException as exc:
            if "SocketTimeoutException" in str(exc.getClass().getName()):
                return None  # the handshake holds and the broker waits for us: no TLS problem
            raise
        return None
    except JException as exc:
        return describe_java_exception(exc, host)
    finally:
        if socket_ is not None:
            try:
                socket_.close()
            except JException:
                pass


def describe_java_exception(exc: Any, host: str = "") -> str | None:
    """:func:`describe_java` for a Java throwable (JPype), following causes and linked exceptions."""
    return describe_java(((str(link.getClass().getSimpleName()), str(link.getMessage() or ""))
                          for link in jvm.causes(exc)), host)
