"""relaygraph/webhooks_cli.py: a tenant's webhook signing secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from relaygraph.webhooks_cli import webhooks_app


def _secret(tenant: str) -> str:
    result = CliRunner().invoke(webhooks_app, ["secret", "--tenant", tenant])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_each_tenant_has_its_own_stable_secret(data_dir: Path) -> None:
    first = _secret("acme")
    assert first.startswith("whsec_")
    assert _secret("acme") == first  # generated once into the data dir, then reused
    assert _secret("globex") != first


def test_a_configured_deployment_secret_rotates_every_tenant(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generated = _secret("acme")
    monkeypatch.setenv("RELAYGRAPH_WEBHOOK_SECRET", "a-configured-deployment-secret")
    configured = _secret("acme")
    assert configured != generated
    monkeypatch.setenv("RELAYGRAPH_WEBHOOK_SECRET", "rotated")
    assert _secret("acme") != configured
