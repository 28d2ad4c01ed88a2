"""``relaygraph credentials``: set, list and delete tenants' own provider keys.

The key is read from stdin (``--key-stdin``) or a hidden prompt, never from the command
line (where shell history and ``ps`` would keep it), and is never printed back: listings
show its last 4 characters. ``openai-compatible`` keys belong to one server: ``--base-url``
is required for them (and refused for openai/google); a compatible key stored before base
URLs existed is listed as "unscoped, unused" (``delete openai-compatible`` without
``--base-url`` removes it). Exit codes: 0 done, 2 bad input or configuration.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console

from relaygraph.store_cli import with_store

if TYPE_CHECKING:
    from providers.credentials import CredentialStore
    from store import Database

credentials_app = typer.Typer(
    name="credentials",
    help="Tenants' own model provider keys (bring your own key), stored encrypted.",
    no_args_is_help=True,
    add_completion=False,
)
_out = Console(highlight=False)
_err = Console(stderr=True, highlight=False)
T = TypeVar("T")

ProviderArg = Annotated[str, typer.Argument(help="Provider: openai, google or openai-compatible.")]
TenantOpt = Annotated[str, typer.Option("--tenant", help="The tenant the key belongs to.")]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        help="openai-compatible only (required there): the server's base URL, as in "
        "openai-compatible:MODEL@BASE_URL; the key is sent to that server only.",
    ),
]


def _with_credentials(work: Callable[[CredentialStore], Awaitable[T]]) -> T:
    """Run ``work`` with the store's credentials, sealed under the configured secret."""
    from providers.credentials import CredentialCipher, CredentialError, CredentialStore
    from runtime.settings import Settings

    async def run(db: Database) -> T:
        settings = Settings()
        secret = settings.secret_key.get_secret_value() if settings.secret_key else None
        cipher = CredentialCipher.from_secret(secret, settings.data_dir)
        return await work(CredentialStore(db, cipher, cache_seconds=0))

    return with_store(run, (CredentialError,))


@credentials_app.command("set")
def set_credential(
    provider: ProviderArg,
    tenant: TenantOpt,
    key_stdin: Annotated[
        bool, typer.Option("--key-stdin", help="Read the key from stdin (for scripts).")
    ] = False,
    base_url: BaseUrlOpt = None,
) -> None:
    """Store or replace the tenant's key for a provider; its model calls use it from now on."""
    _check_scope(provider, base_url)  # before asking for the key
    if key_stdin:
        api_key = sys.stdin.readline().strip()
    else:
        api_key = typer.prompt(f"{provider} API key for tenant {tenant}", hide_input=True)

    async def work(store: CredentialStore) -> None:
        info = await store.set(
            tenant=tenant, provider=provider, api_key=api_key, base_url=base_url, created_by="cli"
        )
        at = f" for {info.base_url}" if info.base_url else ""
        _err.print(
            f"stored the {info.provider} key of tenant {info.tenant}{at} ({info.key_hint})",
            markup=False,
            soft_wrap=True,
        )

    _with_credentials(work)


@credentials_app.command("list")
def list_credentials(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List stored keys (tenant, provider, base URL, last 4 characters), never the keys."""

    async def work(store: CredentialStore) -> list[dict[str, str | None]]:
        return [info.to_dict() for info in await store.list_credentials(tenant=tenant)]

    rows = _with_credentials(work)
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        return
    if not rows:
        _err.print("no provider credentials", markup=False, soft_wrap=True)
        return
    for row in rows:
        provider = str(row["provider"])
        if row["base_url"]:
            provider += f"  {row['base_url']}"
        elif row["status"] != "active":
            provider += f"  ({row['status']}: set it again with --base-url)"
        sys.stdout.write(f"{row['tenant']}  {provider}  {row['key_hint']}  {row['updated_at']}\n")


@credentials_app.command("delete")
def delete_credential(
    provider: ProviderArg, tenant: TenantOpt, base_url: BaseUrlOpt = None
) -> None:
    """Delete the tenant's key: its calls use the deployment's default key again.
    ``openai-compatible`` without ``--base-url``: the unscoped key stored before base URLs."""

    async def work(store: CredentialStore) -> bool:
        return await store.delete(tenant=tenant, provider=provider, base_url=base_url)

    at = f" for {base_url}" if base_url else ""
    if not _with_credentials(work):
        _err.print(
            f"error: tenant {tenant!r} has no {provider} key{at}", markup=False, soft_wrap=True
        )
        raise typer.Exit(2)
    _err.print(f"deleted the {provider} key of tenant {tenant}{at}", markup=False, soft_wrap=True)


def _check_scope(provider: str, base_url: str | None) -> None:
    """Exit 2 with the reason when ``base_url`` is missing, malformed or not allowed."""
    from providers.credentials import CredentialError, scope_of

    try:
        scope_of(provider, base_url)
    except CredentialError as exc:
        _err.print(f"error: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
