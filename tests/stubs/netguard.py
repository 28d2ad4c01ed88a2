"""Fail loudly when a test tries to reach a host other than this machine.

``install()`` patches ``socket.socket.connect``/``connect_ex``, ``socket.getaddrinfo`` and
``socket.create_connection``: IP sockets may reach only loopback (127.0.0.0/8, ::1,
"localhost"); other address families (AF_UNIX, netlink) never leave the machine and pass.
Anything else raises ``NetworkGuardError`` and is recorded, because HTTP clients often wrap
it (openai raises ``APIConnectionError``): ``take_violations()`` returns what was refused.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable
from typing import Any

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", ""})


class NetworkGuardError(RuntimeError):
    """A test tried to reach a non-local host."""


_originals: dict[str, Any] = {}
_violations: list[str] = []
_lock = threading.Lock()


def is_local(host: object) -> bool:
    """Whether ``host`` (a name, an address, or None for a wildcard bind) is this machine."""
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    name = str(host).strip("[]").lower()
    if name in LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def _refuse(host: object, port: object) -> None:
    message = (
        f"network guard: test tried to reach {host}:{port}; tests may only connect to "
        "loopback (127.0.0.0/8, ::1, localhost). Use a local stub (tests/stubs/openai_stub.py) "
        "or a scripted: model instead."
    )
    with _lock:
        _violations.append(message)
    raise NetworkGuardError(message)


def _check_address(sock: socket.socket, address: Any) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        host, port = address[0], address[1]
        if not is_local(host):
            _refuse(host, port)


def _guard_connect(original: Callable[..., Any]) -> Callable[..., Any]:
    def connect(self: socket.socket, address: Any) -> Any:
        _check_address(self, address)
        return original(self, address)

    return connect


def _guarded_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    if not is_local(host):
        _refuse(host, port)
    return _originals["getaddrinfo"](host, port, *args, **kwargs)


def _guarded_create_connection(address: tuple[Any, Any], *args: Any, **kwargs: Any) -> Any:
    if not is_local(address[0]):
        _refuse(address[0], address[1])
    return _originals["create_connection"](address, *args, **kwargs)


def install() -> None:
    """Patch the socket module; calling it again while installed does nothing."""
    with _lock:
        if _originals:
            return
        _originals.update(
            connect=socket.socket.connect,
            connect_ex=socket.socket.connect_ex,
            getaddrinfo=socket.getaddrinfo,
            create_connection=socket.create_connection,
        )
        socket.socket.connect = _guard_connect(_originals["connect"])  # type: ignore[method-assign]
        socket.socket.connect_ex = _guard_connect(_originals["connect_ex"])  # type: ignore[method-assign]
        socket.getaddrinfo = _guarded_getaddrinfo
        socket.create_connection = _guarded_create_connection  # type: ignore[assignment]


def uninstall() -> None:
    """Restore the socket module; does nothing when not installed."""
    with _lock:
        if not _originals:
            return
        socket.socket.connect = _originals["connect"]  # type: ignore[method-assign]
        socket.socket.connect_ex = _originals["connect_ex"]  # type: ignore[method-assign]
        socket.getaddrinfo = _originals["getaddrinfo"]
        socket.create_connection = _originals["create_connection"]
        _originals.clear()


def installed() -> bool:
    return bool(_originals)


def take_violations() -> list[str]:
    """The refusals since the last call (clears them), to fail a test whose client hid one."""
    with _lock:
        taken = list(_violations)
        _violations.clear()
        return taken
