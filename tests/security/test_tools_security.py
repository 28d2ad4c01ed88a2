"""Tools under attack, beyond tests/tools (which cover the allow-list, private ranges by
name, redirects to a named private host, '..' and symlinks, output and time limits):
IP literals in every spelling, DNS rebinding across a redirect, and tenant ids that
try to become a path."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from identity import Principal
from tests.stubs.server import LocalServer
from tools.builtin.files import Sandbox
from tools.builtin.http_fetch import Fetcher, pin_public_address
from tools.types import ToolError

pytestmark = pytest.mark.security


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",  # 127.0.0.1 as one decimal number
        "http://0177.0.0.1/",  # octal
        "http://0x7f.0.0.1/",  # hex
        "http://0x7f000001/",
        "http://127.1/",  # short form
        "http://017700000001/",
        "http://2852039166/latest/meta-data/",  # 169.254.169.254, decimal
        "http://169.254.169.254/latest/meta-data/",
        "http://0xa9fea9fe/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::1]/",
        "http://[fe80::1]/",
        "http://[::]/",
        "http://0.0.0.0/",
        "http://0/",
        "http://10.1.2.3:8080/",
        "http://192.168.0.1/",
        "http://[fd00::1]/",
        "http://[2002:7f00:1::]/",  # 6to4 wrapping 127.0.0.1
        "http://localhost/",
        "http://localhost./",
    ],
)
async def test_outgoing_requests_refuse_every_spelling_of_a_private_address(url: str) -> None:
    """The guard of webhooks (any public host). The resolver reads numeric hosts the way
    the system's getaddrinfo does (C ``inet_aton``: decimal, octal, hex, short forms),
    without DNS (the test network guard forbids lookups)."""
    with pytest.raises(ToolError) as refused:
        await pin_public_address(url, resolver=_numeric_resolver)
    assert refused.value.code in ("url_not_allowed", "dns_failed"), refused.value.message
    if refused.value.code == "url_not_allowed":
        assert "SSRF" in refused.value.message or "address" in refused.value.message


async def _numeric_resolver(host: str, port: int) -> list[str]:
    if host.rstrip(".") == "localhost":
        return ["127.0.0.1", "::1"]
    try:
        return [socket.inet_ntoa(socket.inet_aton(host))]
    except OSError:
        raise OSError(f"{host}: no such host (no DNS in tests)") from None


def test_the_numeric_resolver_reads_what_getaddrinfo_reads() -> None:
    assert socket.inet_ntoa(socket.inet_aton("0177.0.0.1")) == "127.0.0.1"
    assert socket.inet_ntoa(socket.inet_aton("2852039166")) == "169.254.169.254"


class _Rebinder(LocalServer):
    """Redirects to a URL given in the query string (same host or another)."""

    name = "rebinder"

    def __init__(self) -> None:
        super().__init__()

        async def hop(request: Request) -> Response:
            return RedirectResponse(request.query_params["to"], status_code=302)

        async def page(request: Request) -> Response:
            return PlainTextResponse("inside")

        self.app = Starlette(routes=[Route("/hop", hop), Route("/page", page)])


@pytest.fixture(scope="module")
def rebinder() -> Iterator[_Rebinder]:
    with _Rebinder() as server:
        yield server


async def test_dns_rebinding_across_a_redirect_is_refused(rebinder: _Rebinder) -> None:
    """The first answer for rebind.test is the (exempted) test server; the redirect goes
    to the same name, whose second answer is the cloud metadata address. Each hop is
    resolved and checked again, and the connection goes to the checked address."""
    answers = iter(["127.0.0.1", "169.254.169.254", "169.254.169.254"])
    lookups: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        lookups.append(host)
        return [next(answers)]

    fetcher = Fetcher(
        ["rebind.test"],
        resolver=rebinding,
        allow_networks=["127.0.0.1/32"],
        timeout_seconds=5,
    )
    port = rebinder.address[1]
    url = f"http://rebind.test:{port}/hop?to=http://rebind.test:{port}/page"
    with pytest.raises(ToolError) as refused:
        await fetcher.fetch(url)
    assert refused.value.code == "url_not_allowed"
    assert "link-local" in refused.value.message
    assert lookups == ["rebind.test", "rebind.test"]


@pytest.mark.parametrize(
    "target",
    [
        "http://2852039166/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://0x7f.1/",
        "http://localhost/",
    ],
)
async def test_redirects_to_ip_literals_are_refused(rebinder: _Rebinder, target: str) -> None:
    async def local(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    fetcher = Fetcher(
        ["site.test"], resolver=local, allow_networks=["127.0.0.1/32"], timeout_seconds=5
    )
    url = f"http://site.test:{rebinder.address[1]}/hop?to={target}"
    with pytest.raises(ToolError) as refused:
        await fetcher.fetch(url)
    assert refused.value.code == "url_not_allowed"


@pytest.mark.parametrize("tenant", ["..", ".", "../b", "a/../../etc", "~root", "/abs", "a b"])
def test_tenant_ids_never_become_a_path_outside_the_files_root(tmp_path: Path, tenant: str) -> None:
    root = tmp_path / "files"
    root.mkdir()
    sandbox = Sandbox(root)
    folder = sandbox.folder(tenant)
    assert folder.parent == root.resolve(), (tenant, folder)
    target, _ = sandbox.resolve(tenant, "x.txt")
    assert root.resolve() in target.resolve().parents


def test_tenant_ids_that_look_alike_get_different_folders(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    names = ["a_b", "a/b", "a b", "a:b", ".", "..", "_", "a"]
    folders = {sandbox.folder(name) for name in names}
    assert len(folders) == len(names)
    assert sandbox.folder("acme") == (tmp_path / "acme").resolve(), "plain ids keep their folder"


async def test_jwt_tenant_dotdot_cannot_read_outside_the_root(tmp_path: Path) -> None:
    """End to end through the files tool: a principal whose tenant is '..' (any JWT
    issuer may put that in a claim) stays inside the root."""
    from tools.builtin.files import files_tools

    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("outside the root")
    read = next(spec for spec in files_tools(root) if spec.name == "files_read")
    principal = Principal.with_roles("..", "mallory", ["user"])

    class _Ctx:
        def __init__(self) -> None:
            self.principal = principal

    with pytest.raises(ToolError) as refused:
        await read.handler(_Ctx(), read.input_model(path="secret.txt"))  # type: ignore[arg-type]
    assert refused.value.code in ("not_found", "file_not_found"), refused.value.message
