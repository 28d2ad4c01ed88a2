"""Whether an address can be listened on, said as a person can act on it (``serve``,
``mcp --http``)."""

from __future__ import annotations

import errno
import os
import socket


def unbindable(host: str, port: int, *, only_in_use: bool = False) -> str | None:
    """Why ``host:port`` cannot be listened on (in use, not a local address), or None;
    with ``only_in_use`` only an address already in use counts."""
    try:
        with socket.create_server((host, port)):
            return None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return (
                f"{host}:{port} is already in use; stop the process listening there or "
                "choose another --port"
            )
        if only_in_use:
            return None
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return f"cannot listen on {host}:{port} ({reason}); choose a local address with --host"
