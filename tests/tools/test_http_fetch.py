"""tools/builtin/http_fetch.py against a real HTTP server on 127.0.0.1.

Loopback is exactly what the SSRF guard blocks, so the allow path is tested the way
an operator would open an internal host: ``allow_networks=["127.0.0.1/32"]`` with a
test resolver that maps the allowed names. Without that exemption the same server
is refused, which is the point.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.stubs.server import LocalServer
from tools.builtin.http_fetch import Fetcher, blocked_reason
from tools.types import ToolError

ADDRESSES = {
    "allowed.test": "127.0.0.1",
    "intranet.test": "10.0.0.5",
    "metadata.test": "169.254.169.254",
    "mapped.test": "::ffff:127.0.0.1",
    "mapped-private.test": "::ffff:10.1.2.3",
    "v6-loopback.test": "::1",
}


class Site(LocalServer):
    name = "site"

    def __init__(self) -> None:
        super().__init__()
        self.hosts: list[str] = []

        async def page(request: Request) -> Response:
            self.hosts.append(request.headers.get("host", ""))
            return PlainTextResponse("hello from the page")

        async def big(request: Request) -> Response:
            return PlainTextResponse("x" * 50_000)

        async def slow(request: Request) -> Response:
            await asyncio.sleep(5)
            return PlainTextResponse("late")

        async def hop(request: Request) -> Response:
            return RedirectResponse(request.query_params["to"], status_code=302)

        async def loop(request: Request) -> Response:
            return RedirectResponse("/loop", status_code=302)

        self.app = Starlette(
            routes=[
                Route("/loop", loop),
                Route("/page", page),
                Route("/big", big),
                Route("/slow", slow),
                Route("/hop", hop),
            ]
        )


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with Site() as server:
        yield server


async def _resolve(host: str, port: int) -> list[str]:
    if host not in ADDRESSES:
        raise OSError("name not known")
    return [ADDRESSES[host]]


def _fetcher(**options: object) -> Fetcher:
    defaults: dict[str, object] = {
        "allowed_domains": list(ADDRESSES),
        "resolver": _resolve,
        "allow_networks": ["127.0.0.1/32"],
        "timeout_seconds": 2.0,
    }
    return Fetcher(**{**defaults, **options})  # type: ignore[arg-type]


def _url(site: Site, path: str, host: str = "allowed.test") -> str:
    return f"http://{host}:{site.address[1]}{path}"


async def test_allowed_host_is_fetched_with_its_own_host_header(site: Site) -> None:
    result = await _fetcher().fetch(_url(site, "/page"))

    assert (result.status, result.text, result.truncated) == (200, "hello from the page", False)
    assert site.hosts[-1] == f"allowed.test:{site.address[1]}"


async def test_loopback_is_refused_without_an_explicit_exemption(site: Site) -> None:
    with pytest.raises(ToolError) as refused:
        await _fetcher(allow_networks=[]).fetch(_url(site, "/page"))

    assert refused.value.code == "url_not_allowed" and "loopback" in refused.value.message


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("intranet.test", "private"),
        ("metadata.test", "link-local"),
        ("mapped.test", "IPv6-mapped loopback"),
        ("mapped-private.test", "IPv6-mapped private"),
        ("v6-loopback.test", "loopback"),
    ],
)
async def test_private_addresses_are_refused_after_resolution(
    site: Site, host: str, reason: str
) -> None:
    with pytest.raises(ToolError) as refused:
        await _fetcher().fetch(_url(site, "/page", host))

    assert refused.value.code == "url_not_allowed"
    assert reason in refused.value.message


@pytest.mark.parametrize(
    "url",
    [
        "http://elsewhere.example/x",
        "ftp://allowed.test/x",
        "http://user:pw@allowed.test/",
        "http://127.0.0.1/",
    ],
)
async def test_urls_outside_the_allow_list_are_refused(url: str) -> None:
    with pytest.raises(ToolError) as refused:
        await _fetcher().fetch(url)

    assert refused.value.code == "url_not_allowed"


async def test_redirects_are_checked_again(site: Site) -> None:
    inside = await _fetcher().fetch(_url(site, f"/hop?to={_url(site, '/page')}"))
    with pytest.raises(ToolError) as to_metadata:
        await _fetcher().fetch(_url(site, "/hop?to=http://metadata.test/latest/meta-data"))
    with pytest.raises(ToolError) as to_stranger:
        await _fetcher().fetch(_url(site, "/hop?to=http://stranger.example/"))

    assert inside.text == "hello from the page" and inside.final_url.endswith("/page")
    assert "link-local" in to_metadata.value.message
    assert "allow-list" in to_stranger.value.message


async def test_redirect_loops_stop(site: Site) -> None:
    with pytest.raises(ToolError) as refused:
        await _fetcher().fetch(_url(site, "/loop"))

    assert refused.value.code == "too_many_redirects"


async def test_bodies_are_cut_at_the_size_limit(site: Site) -> None:
    result = await _fetcher(max_bytes=1024).fetch(_url(site, "/big"))

    assert result.truncated and result.bytes == 1024 and len(result.text) == 1024


async def test_slow_servers_time_out(site: Site) -> None:
    with pytest.raises(ToolError) as late:
        await _fetcher(timeout_seconds=0.3).fetch(_url(site, "/slow"))

    assert late.value.code in ("timeout", "fetch_failed")


def test_blocked_reason_covers_the_special_ranges() -> None:
    import ipaddress

    for text in (
        "127.0.0.1",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.1.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "0.0.0.0",
        "::ffff:192.168.0.1",
        "100.64.0.1",
        "224.0.0.1",
    ):
        assert blocked_reason(ipaddress.ip_address(text)) is not None, text
    assert blocked_reason(ipaddress.ip_address("93.184.216.34")) is None
    assert blocked_reason(ipaddress.ip_address("2606:4700::1111")) is None


async def test_fetched_pages_are_untrusted_output(system, site: Site) -> None:  # type: ignore[no-untyped-def]
    from identity import local_principal
    from tools import BuiltinConfig, ToolExecutor, ToolPolicy, ToolRegistry, builtin_tools

    registry = ToolRegistry(
        builtin_tools(
            BuiltinConfig(
                http_allowed_domains=("allowed.test",),
                http_allow_networks=("127.0.0.1/32",),
                http_resolver=_resolve,
            )
        )
    )
    executor = ToolExecutor(system.db, ToolPolicy(registry))

    outcome = await executor.call_external(
        local_principal(), "http_fetch", {"url": _url(site, "/page")}
    )

    assert outcome.ok and outcome.output["text"] == "hello from the page"
    assert outcome.trusted is False
