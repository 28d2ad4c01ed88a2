"""``relaygraph credentials``: set, list and delete tenants' own provider keys.

The key is read from stdin (``--key-stdin``) or a hidden prompt, never from the command
line (where shell history and ``ps`` would keep it), and is never printed back: listings
show its last 4 characters. Exit codes: 0 done, 2 bad input or configuration.
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
) -> None:
    """Store or replace the tenant's key for a provider; its model calls use it from now on."""
    if key_stdin:
        api_key = sys.stdin.readline().strip()
    else:
        api_key = typer.prompt(f"{provider} API key for tenant {tenant}", hide_input=True)

    async def work(store: CredentialStore) -> None:
        info = await store.set(tenant=tenant, provider=provider, api_key=api_key, created_by="cli")
        _err.print(
            f"stored the {info.provider} key of tenant {info.tenant} ({info.key_hint})",
            markup=False,
        )

    _with_credentials(work)


@credentials_app.command("list")
def list_credentials(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List stored keys (tenant, provider, last 4 characters), never the keys."""

    async def work(store: CredentialStore) -> list[dict[str, str | None]]:
        return [info.to_dict() for info in await store.list_credentials(tenant=tenant)]

    rows = _with_credentials(work)
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        return
    if not rows:
        _err.print("no provider credentials", markup=False)
        return
    for row in rows:
        sys.stdout.write(
            f"{row['tenant']}  {row['provider']}  {row['key_hint']}  {row['updated_at']}\n"
        )


@credentials_app.command("delete")
def delete_credential(provider: ProviderArg, tenant: TenantOpt) -> None:
    """Delete the tenant's key: its calls use the deployment's default key again."""

    async def work(store: CredentialStore) -> bool:
        return await store.delete(tenant=tenant, provider=provider)

    if not _with_credentials(work):
        _err.print(f"error: tenant {tenant!r} has no {provider} key", markup=False)
        raise typer.Exit(2)
    _err.print(f"deleted the {provider} key of tenant {tenant}", markup=False)
