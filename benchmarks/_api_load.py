"""The load client of the API benchmarks, and latency statistics.

aiohttp when it is installed; httpx otherwise (slower per request: with 1,000
concurrent requests httpx itself becomes the bottleneck, so the numbers then say
more about the client than the server).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

try:
    import aiohttp
except ImportError:  # pragma: no cover - depends on the environment
    aiohttp = None  # type: ignore[assignment]


class RequestFailed(RuntimeError):
    """A request answered with an unexpected status."""


def client_kind() -> str:
    return "aiohttp" if aiohttp is not None else "httpx"


def client_note() -> str:
    if aiohttp is not None:
        return f"load client: aiohttp {aiohttp.__version__}"
    return (
        "load client: httpx (aiohttp is not installed: `pip install aiohttp`); httpx costs "
        "more CPU per request and can be the bottleneck at high concurrency"
    )


class LoadClient:
    """POST/GET JSON with no connection limit and a generous timeout."""

    def __init__(self, *, timeout: float = 300.0) -> None:
        self.timeout = timeout
        self.kind = client_kind()
        self._session: Any = None

    async def __aenter__(self) -> LoadClient:
        if self.kind == "aiohttp":
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
        else:
            import httpx

            self._session = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=2000),
                trust_env=False,
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            if self.kind == "aiohttp":
                await self._session.close()
            else:
                await self._session.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        expect: int = 200,
    ) -> Any:
        """The decoded JSON body (None when empty).

        Raises:
            RequestFailed: the status was not ``expect``.
        """
        if self.kind == "aiohttp":
            async with self._session.request(
                method, url, json=json, headers=dict(headers or {})
            ) as response:
                status = response.status
                body = await response.read()
        else:
            response = await self._session.request(
                method, url, json=json, headers=dict(headers or {})
            )
            status = response.status_code
            body = response.content
        if status != expect:
            raise RequestFailed(f"{method} {url} -> {status}: {body[:300]!r}")
        if not body:
            return None
        import json as json_module

        return json_module.loads(body)

    async def post(self, url: str, body: Any = None, **kwargs: Any) -> Any:
        return await self.request("POST", url, json=body if body is not None else {}, **kwargs)

    async def get(self, url: str, **kwargs: Any) -> Any:
        return await self.request("GET", url, **kwargs)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Timing:
    """Client timestamps of one run (epoch seconds): ``begun`` when its first request
    went out, ``sent`` when the request that waits for the run went out, ``received``
    when its answer came back."""

    ident: str
    sent: float
    received: float
    begun: float | None = None

    @property
    def latency(self) -> float:
        return self.received - (self.begun if self.begun is not None else self.sent)


@dataclass
class Sample:
    """Latencies (seconds) of one phase and its wall time."""

    label: str
    latencies: list[float]
    wall: float
    errors: int = 0
    first_error: str | None = None
    timings: list[Timing] = field(default_factory=list)
    server_cpu: float = math.nan
    """CPU seconds the server process used during the phase."""

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def cpu_per_run(self) -> float:
        """Server CPU seconds per completed run (NaN if unknown)."""
        return self.server_cpu / self.ok if self.ok else math.nan

    @property
    def rate(self) -> float:
        return self.ok / self.wall if self.wall > 0 else math.nan

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)


def print_table_head(title: str, header: str) -> None:
    """A blank line, the table's title, its column header and a rule under it."""
    print()
    print(title)
    print(header)
    print("-" * len(header))


def fmt_ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def fmt_ratio(value: float) -> str:
    return "n/a" if math.isnan(value) or math.isinf(value) else f"{value:.2f}x"


def ratio(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b) or b == 0:
        return math.nan
    return a / b
