"""Server subprocesses for the API benchmarks: free ports, start, wait ready, always stop.

Every server runs in its own session (process group) on 127.0.0.1, so stopping it
also stops whatever it spawned (``langgraph dev`` starts helpers). ``Servers`` is an
async context manager that stops everything it started, on errors and Ctrl-C too;
an ``atexit`` hook catches the rest. Also the set-up every API benchmark shares: the
bare FastAPI + LangGraph baseline (``start_bare``) and the machine/versions header
(``environment_note``).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

from benchmarks._api_load import client_note

REPO_ROOT = Path(__file__).resolve().parent.parent
_STARTED: list[subprocess.Popen[bytes]] = []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stop(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM the process group we started, then SIGKILL it after ``grace`` seconds."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)  # its own session: pgid == pid
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)


@atexit.register
def _stop_all() -> None:
    while _STARTED:
        _stop(_STARTED.pop())


def stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so that the servers are stopped then too."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a server: ours, the repo importable, no proxies for loopback."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra or {})
    return env


class ServerError(RuntimeError):
    pass


class Server:
    """One server subprocess with its log file."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        port: int,
        ready_path: str,
        env: Mapping[str, str],
        log_dir: Path,
        cwd: Path = REPO_ROOT,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.ready_url = f"{self.base_url}{ready_path}"
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log_dir / f"{name.replace(' ', '_').replace('/', '_')}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.started_in = 0.0

    def start(self) -> None:
        log = self.log_path.open("wb")
        try:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        _STARTED.append(self.process)

    async def wait_ready(self, ready_timeout: float = 60.0) -> None:
        """Poll ``ready_path`` until it answers 200 (bounded by ``ready_timeout``).

        Raises:
            ServerError: the process exited or did not answer in time (log tail included).
        """
        assert self.process is not None
        started = time.monotonic()
        deadline = started + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            if await asyncio.to_thread(self._probe):
                self.started_in = time.monotonic() - started
                return
            await asyncio.sleep(0.1)
        raise ServerError(
            f"{self.name} did not answer {self.ready_url} in {ready_timeout:.0f} s:\n"
            f"{self.log_tail()}"
        )

    def _probe(self) -> bool:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
        try:
            with opener.open(self.ready_url, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(f"    | {line}" for line in text.splitlines()[-lines:])

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far; NaN where
        ``/proc`` cannot tell. Unlike latency, it hardly moves when other processes
        compete for the cores, so per-run CPU compares stacks on a busy machine."""
        if self.process is None:
            return math.nan
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return math.nan

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
            with contextlib.suppress(ValueError):
                _STARTED.remove(self.process)


class Servers:
    """Starts servers and stops every one of them on exit (also on errors)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._servers: list[Server] = []

    async def start(
        self,
        name: str,
        command: Sequence[str],
        *,
        port: int,
        ready_path: str,
        env: Mapping[str, str],
        cwd: Path = REPO_ROOT,
        ready_timeout: float = 60.0,
    ) -> Server:
        server = Server(
            name, command, port=port, ready_path=ready_path, env=env, log_dir=self.log_dir, cwd=cwd
        )
        self._servers.append(server)
        server.start()
        await server.wait_ready(ready_timeout)
        return server

    def stop(self, server: Server) -> None:
        server.stop()
        with contextlib.suppress(ValueError):
            self._servers.remove(server)

    def stop_all(self) -> None:
        while self._servers:
            self._servers.pop().stop()

    async def __aenter__(self) -> Servers:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()


@contextlib.asynccontextmanager
async def bench_servers(prefix: str) -> AsyncIterator[tuple[Path, Servers]]:
    """A scratch directory (removed afterwards) and the servers started in it (stopped)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        root = Path(tmp)
        async with Servers(root) as servers:
            yield root, servers


async def start_bare(
    servers: Servers,
    root: Path,
    *,
    name: str,
    saver: str,
    graph: str,
    delay: float | None = None,
) -> Server:
    """Start the bare FastAPI + LangGraph baseline (``benchmarks._api_bare``) with
    ``saver`` (``sqlite``, its file under ``root``; ``memory``; ``none``) serving
    ``graph`` (``trivial`` or ``slow``); ``delay``: its ``POST /sleep`` seconds.

    Raises:
        ServerError: it did not start.
    """
    port = free_port()
    command = python_module(
        "benchmarks._api_bare", "--port", str(port), "--saver", saver,
        "--db", str(root / f"{name.replace(' ', '-')}.db"), "--graph", graph,
    )  # fmt: skip
    if delay is not None:
        command += ["--delay", str(delay)]
    return await servers.start(name, command, port=port, ready_path="/ok", env=base_env())


def cpu_count_note() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{os.cpu_count()} cores ({usable} usable)"


def environment_note(packages: Iterable[str]) -> str:
    """Cores, Python, the versions of ``packages`` and the load client: the first lines
    every API benchmark prints."""
    found = []
    for name in packages:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} ?")
    return (
        f"{cpu_count_note()}; Python {platform.python_version()}; {', '.join(found)}\n"
        f"{client_note()}"
    )


def python_module(module: str, *args: str) -> list[str]:
    """``python -m module args...`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def run_quiet(command: Sequence[str], *, env: Mapping[str, str], timeout: float) -> str:
    """Run a short command; its stdout.

    Raises:
        ServerError: it failed or timed out (stderr included).
    """
    try:
        done = subprocess.run(
            list(command),
            cwd=REPO_ROOT,
            env=dict(env),
            capture_output=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise ServerError(f"{' '.join(command[:4])}... timed out after {timeout:.0f} s") from exc
    if done.returncode != 0:
        raise ServerError(
            f"{' '.join(command[:4])}... exited {done.returncode}: "
            f"{done.stderr.decode(errors='replace')[-2000:]}"
        )
    return done.stdout.decode()


def run_main(args: Any, benchmark: Callable[[Any], Awaitable[None]]) -> int:
    """The benchmarks' entry point: stop cleanly on SIGTERM or Ctrl-C; always exit 0."""
    stop_on_sigterm()
    try:
        asyncio.run(benchmark(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    return 0
