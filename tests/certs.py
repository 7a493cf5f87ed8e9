"""Test certificates, made with the ``openssl`` and ``keytool`` command-line tools.

:func:`make_certs` writes into a folder of the caller's (a pytest tmp dir):

* ``ca.pem`` / ``ca.key`` — the test CA; ``ca2.pem`` — another CA nobody trusts;
* ``server`` — 127.0.0.1 and localhost, signed by the CA;
* ``wronghost`` — signed by the CA, but for ``other.invalid`` only;
* ``untrusted`` — 127.0.0.1 and localhost, signed by the other CA;
* ``client`` — a client certificate (CN ``amq-bridge-client``) signed by the CA.

Keys are EC P-256 (fast to make). Each certificate comes as ``NAME.pem`` + ``NAME.key``
(unencrypted PKCS#8) and ``NAME.p12`` (password :data:`STORE_PASSWORD`); ``server`` also as
``server.jks``; ``truststore.p12`` / ``truststore.jks`` hold the CA.
"""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

STORE_PASSWORD = "store-pass-4d1c9e"
DAYS = "2"


@dataclass(frozen=True)
class Certs:
    """Where :func:`make_certs` wrote everything."""

    dir: Path

    def path(self, name: str) -> Path:
        return self.dir / name


def available() -> bool:
    """Whether openssl and keytool are on PATH."""
    return bool(shutil.which("openssl") and shutil.which("keytool"))


def _run(*args: str, cwd: Path) -> None:
    result = subprocess.run(args, cwd=cwd, capture_output=True, timeout=60)
    if result.returncode:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.decode(errors='replace')}")


def _ca(dir: Path, name: str, subject: str) -> None:
    _run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
         "-days", DAYS, "-subj", subject, "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=dir)


def _leaf(dir: Path, name: str, ca: str, cn: str, san: str | None, usage: str, jks: bool = False) -> None:
    _run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
         "-subj", f"/CN={cn}", cwd=dir)
    ext = dir / f"{name}.ext"
    ext.write_text(f"basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n" + (f"subjectAltName={san}\n" if san else ""))
    _run("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
         "-CAcreateserial", "-out", f"{name}.pem", "-days", DAYS, "-extfile", ext.name, cwd=dir)
    _run("openssl", "pkcs12", "-export", "-in", f"{name}.pem", "-inkey", f"{name}.key", "-certfile", f"{ca}.pem",
         "-name", name, "-out", f"{name}.p12", "-passout", f"pass:{STORE_PASSWORD}", cwd=dir)
    if jks:  # keytool is a JVM start each time (~1 s): only where a test needs JKS
        _run("keytool", "-importkeystore", "-noprompt", "-srckeystore", f"{name}.p12", "-srcstoretype", "PKCS12",
             "-srcstorepass", STORE_PASSWORD, "-destkeystore", f"{name}.jks", "-deststoretype", "JKS",
             "-deststorepass", STORE_PASSWORD, cwd=dir)


def make_certs(dir: Path) -> Certs:
    """Generate every certificate into ``dir`` (about 2 s)."""
    dir.mkdir(parents=True, exist_ok=True)
    _ca(dir, "ca", "/CN=amq-bridge test CA")
    _ca(dir, "ca2", "/CN=amq-bridge other CA")
    _leaf(dir, "server", "ca", "127.0.0.1", "IP:127.0.0.1,DNS:localhost", "serverAuth", jks=True)
    _leaf(dir, "wronghost", "ca", "other.invalid", "DNS:other.invalid", "serverAuth")
    _leaf(dir, "untrusted", "ca2", "127.0.0.1", "IP:127.0.0.1,DNS:localhost", "serverAuth")
    _leaf(dir, "client", "ca", "amq-bridge-client", None, "clientAuth")
    for kind, suffix in (("PKCS12", "p12"), ("JKS", "jks")):
        _run("keytool", "-importcert", "-noprompt", "-alias", "ca", "-file", "ca.pem", "-keystore",
             f"truststore.{suffix}", "-storetype", kind, "-storepass", STORE_PASSWORD, cwd=dir)
    return Certs(dir)


TLS_READY = re.compile(r"broker ready: openwire=(?P<openwire>\S+) stomp=stomp://(?P<host>[^:\s]+):(?P<port>\d+)"
                       r" openwire_ssl=(?P<openwire_ssl>\S+) stomp_ssl=stomp\+ssl://(?P<ssl_host>[^:\s]+):(?P<ssl_port>\d+)")


@dataclass
class TlsBroker:
    """``amq-bridge broker`` serving ssl:// and stomp+ssl:// too (child process)."""

    openwire_url: str
    stomp_host: str
    openwire_ssl_url: str
    stomp_ssl_host: str
    process: subprocess.Popen[bytes]
    log: Path


def start_tls_broker(workdir: Path, certs: Certs, *extra: str) -> TlsBroker:
    """Start a broker (test credentials) with TLS connectors using ``server.p12``; ``extra`` CLI flags."""
    from tests.conftest import bridge_command, child_env, stop_process, write_config

    workdir.mkdir(parents=True, exist_ok=True)
    config = write_config(workdir / "broker.yaml", namespace="tlsdefault", destination_id="0", connection_id="broker")
    log = workdir / "broker.log"
    with open(log, "wb") as err:
        process = subprocess.Popen(
            bridge_command("broker", "-c", str(config), "--openwire-port", "0", "--stomp-port", "0", "--ssl-port", "0",
                           "--stomp-ssl-port", "0", "--key-store", str(certs.path("server.p12")), *extra),
            stdout=subprocess.PIPE, stderr=err, env=child_env(AMQ_BROKER_KEY_STORE_PASSWORD=STORE_PASSWORD),
            cwd=workdir)
    assert process.stdout is not None
    result: list[str] = []  # the first line, read on a thread so that a hung broker cannot hang the test
    reader = threading.Thread(target=lambda: result.append(process.stdout.readline().decode()), daemon=True)
    reader.start()
    reader.join(60)
    line = result[0] if result else ""
    match = TLS_READY.search(line)
    if not match:
        stop_process(process)
        raise RuntimeError(f"TLS broker did not start: {line!r}\n{log.read_text()}")
    return TlsBroker(match["openwire"], f"{match['host']}:{match['port']}", match["openwire_ssl"],
                     f"{match['ssl_host']}:{match['ssl_port']}", process, log)


class StubTlsServer:
    """A loopback TLS server that only does handshakes, with the certificate ``name`` of ``certs``
    (for the refusals: a client that rejects the certificate never gets further)."""

    def __init__(self, certs: Certs, name: str) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(certs.path(f"{name}.pem"), certs.path(f"{name}.key"))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"stub-tls-{name}", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                continue
            try:
                sock.settimeout(5)
                with self._context.wrap_socket(sock, server_side=True) as tls:
                    time.sleep(0.2)  # the handshake went through (insecure client): hang up
                    tls.close()
            except (OSError, ssl.SSLError):
                sock.close()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        self._thread.join(2)


if __name__ == "__main__":  # python -m tests.certs DIR
    import sys

    print(make_certs(Path(sys.argv[1])).dir)
