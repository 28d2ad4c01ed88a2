"""``relaygraph keys``: create, list and revoke API keys.

A new key is printed once and never again (only a hash is stored). Exit codes: 0 done,
2 bad input (unknown role, unknown key id, bad configuration), 1 unexpected error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from relaygraph.store_cli import with_store

if TYPE_CHECKING:
    from store import Database

keys_app = typer.Typer(
    name="keys",
    help="Create, list and revoke API keys for the HTTP API and MCP clients.",
    no_args_is_help=True,
    add_completion=False,
)
_out = Console(highlight=False)
_err = Console(stderr=True, highlight=False)

EXIT_OK = 0
EXIT_BAD_INPUT = 2
T = TypeVar("T")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _with_store(work: Callable[[Database], Awaitable[T]]) -> T:
    from identity.apikeys import ApiKeyError

    return with_store(work, (ApiKeyError,))


def _emit_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


@keys_app.command("create")
def create(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant the key acts in.")],
    user: Annotated[str, typer.Option("--user", help="User the key acts as.")],
    roles: Annotated[
        str, typer.Option("--roles", help="Comma-separated roles: user, reviewer, admin.")
    ] = "user",
    name: Annotated[str | None, typer.Option("--name", help="A label for listings.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a key and print it once: with --json as {"key", "key_id", "tenant", "user",
    "roles"}, otherwise the key alone on the last line of stdout."""
    from identity.apikeys import create_api_key

    role_list = [role.strip() for role in roles.split(",") if role.strip()]
    created = _with_store(
        lambda db: create_api_key(db=db, tenant=tenant, user=user, roles=role_list, name=name)
    )
    if as_json:
        _emit_json(created.to_dict())
        return
    info = created.info
    _err.print(
        f"created API key {info.key_id} for user {info.user} in tenant {info.tenant} "
        f"with roles {', '.join(info.roles)}.\n"
        "Store it now: it is shown only this once. Send it as the 'x-api-key' header.",
        soft_wrap=True,
        markup=False,
    )
    sys.stdout.write(created.key + "\n")
    sys.stdout.flush()


@keys_app.command("list")
def list_keys(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's keys.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List keys (never their secrets), revoked ones included."""
    from identity.apikeys import list_api_keys

    keys = _with_store(lambda db: list_api_keys(db=db, tenant=tenant))
    if as_json:
        _emit_json([key.to_dict() for key in keys])
        return
    if not keys:
        _err.print("no API keys" + (f" in tenant {tenant}" if tenant else ""), markup=False)
        return
    rows = [("KEY_ID", "STATUS", "TENANT", "USER", "ROLES", "CREATED", "LAST USED", "NAME")]
    for key in keys:
        rows.append(
            (
                key.key_id,
                "active" if key.active else "revoked",
                key.tenant,
                key.user,
                ",".join(key.roles),
                f"{key.created_at:%Y-%m-%d}",
                f"{key.last_used_at:%Y-%m-%d}" if key.last_used_at else "never",
                key.name or "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        sys.stdout.write(line.rstrip() + "\n")


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (or the whole key) to revoke.")],
) -> None:
    """Revoke a key: requests using it are refused from now on."""
    from identity.apikeys import looks_like_api_key, parse_api_key, revoke_api_key

    async def work(db: Database) -> None:
        target = parse_api_key(key_id)[0] if looks_like_api_key(key_id) else key_id.strip()
        info = await revoke_api_key(db=db, key_id=target)
        _out.print(
            f"revoked API key {info.key_id} ({info.user} in tenant {info.tenant})", markup=False
        )

    _with_store(work)
