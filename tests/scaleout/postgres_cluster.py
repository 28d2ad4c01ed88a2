"""A throwaway PostgreSQL cluster for tests and benchmarks (Debian's server binaries).

``initdb`` into a temporary directory, ``pg_ctl start`` on 127.0.0.1 and a free port,
trust authentication, ``fsync=off`` (the data is thrown away). As root, the server runs as
the ``postgres`` system user because PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here; install Debian's ``postgresql`` package."""


def postgres_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` with initdb and pg_ctl, if any."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
    )
    for candidate in reversed(candidates):
        path = Path(candidate)
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """One running throwaway cluster; ``database_url()`` makes a fresh database each call."""

    def __init__(self, bin_dir: Path, root: Path, port: int, run_as: str | None) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.port = port
        self.run_as = run_as

    @classmethod
    @contextlib.contextmanager
    def running(cls, *, max_connections: int = 200) -> Iterator[PostgresCluster]:
        """Start a cluster for the duration of the block.

        Raises:
            PostgresUnavailable: no server binaries, or the server did not start.
        """
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise PostgresUnavailable("no /usr/lib/postgresql/*/bin/initdb on this machine")
        root = Path(tempfile.mkdtemp(prefix="relaygraph-pg-"))
        run_as = "postgres" if os.geteuid() == 0 else None
        if run_as is not None:
            entry = pwd.getpwnam(run_as)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        root.chmod(0o755)
        cluster = cls(bin_dir, root, _free_port(), run_as)
        try:
            cluster._start(max_connections)
            yield cluster
        finally:
            cluster._stop()
            shutil.rmtree(root, ignore_errors=True)

    def _command(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        return [*prefix, *args]

    def _start(self, max_connections: int) -> None:
        steps = [
            [str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres",
             "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"],
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
             "-w", "-t", "60", "start", "-o",
             f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off "
             f"-c synchronous_commit=off -c full_page_writes=off "
             f"-c max_connections={max_connections}"],
        ]  # fmt: skip
        for step in steps:
            result = subprocess.run(self._command(*step), capture_output=True, text=True)
            if result.returncode != 0:
                log = self.root / "log"
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise PostgresUnavailable(
                    f"{Path(step[0]).name} failed: {result.stderr.strip()}\n{tail}"
                )

    def _stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                self._command(
                    str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"
                ),
                capture_output=True,
            )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def database_url(self, prefix: str = "rg") -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
