"""A throwaway PostgreSQL server for the tests, from Debian's ``postgresql`` package.

``initdb`` into a temporary directory, then ``pg_ctl`` starts it listening on 127.0.0.1 on a free
port (its unix socket in the same directory), with password authentication for one test user.
PostgreSQL refuses to run as root: when the tests run as root, the server runs as the
``postgres`` system user (``runuser``), and the directory is handed to that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

USER = "bridge"


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb``, else ``None``."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        return None
    return Path(max(found, key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit()
                    else 0)).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PgServer:
    """One PostgreSQL cluster in a temporary directory; :meth:`stop` and :meth:`start` it at will.

    Args:
        bindir: Where ``initdb``, ``pg_ctl`` and ``postgres`` are.
    """

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.password = secrets.token_hex(12)
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="amq-bridge-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self.as_user:
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", USER, "--pwfile", str(pwfile), "--auth", "scram-sha-256",
                  "-E", "UTF8", "--no-locale", "--no-sync")
        pwfile.unlink()

    @property
    def url(self) -> str:
        """A connection string with the password in it."""
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        result = subprocess.run([*self.as_user, str(self.bindir / tool), *args], capture_output=True,
                                timeout=timeout, cwd=self.root)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr.decode(errors='replace')}\n{log}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections (same port every time)."""
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root} "
                   "-c fsync=off -c full_page_writes=off -c max_connections=40")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start",
                  timeout=90)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (disconnects clients), or ``immediate`` (like a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", timeout=90)

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        """Stop the server if it runs, and delete its directory."""
        try:
            if self.running:
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
