"""``relaygraph webhooks``: what a tenant needs to verify the webhooks it receives."""

from __future__ import annotations

from typing import Annotated

import typer

webhooks_app = typer.Typer(help="Run-completion webhooks.", no_args_is_help=True)


@webhooks_app.callback()
def webhooks() -> None:
    """Run-completion webhooks (signed the Standard Webhooks way)."""


@webhooks_app.command("secret")
def secret(
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant whose secret to print.")],
) -> None:
    """Print the tenant's signing secret (Standard Webhooks 'whsec_…' form)."""
    from relaygraph.cli import _settings
    from runtime.webhooks import deployment_secret, tenant_secret
    from store.database import ensure_writable_dir

    settings = _settings()
    ensure_writable_dir(settings.data_dir)
    configured = settings.webhook_secret
    deployment = deployment_secret(
        configured.get_secret_value() if configured else None, settings.data_dir
    )
    typer.echo(tenant_secret(deployment, tenant))
