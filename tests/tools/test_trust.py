"""tools/trust.py and its settings: which sources taint a run is configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.settings import Settings
from runtime.system import approval_policy
from tools import TrustConfig


def test_defaults_trust_the_workspace_only() -> None:
    trust = TrustConfig()

    assert trust.is_trusted("workspace") and trust.is_trusted("outbox")
    for source in ("web", "files", "documents", "memory", "external", "external:time", "unknown"):
        assert not trust.is_trusted(source), source


def test_overrides_apply_per_source_and_per_attached_server() -> None:
    trust = TrustConfig.with_overrides({"files": True, "external:time": True, "workspace": False})

    assert trust.is_trusted("files") and trust.is_trusted("external:time")
    assert not trust.is_trusted("external:other") and not trust.is_trusted("workspace")


def test_settings_read_trust_and_approvers_from_the_environment(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYGRAPH_TRUST_SOURCES", '{"web": true}')
    monkeypatch.setenv("RELAYGRAPH_APPROVER_ROLES", '{"destructive": ["admin"]}')
    monkeypatch.setenv("RELAYGRAPH_FOUR_EYES", "true")
    monkeypatch.setenv("RELAYGRAPH_HTTP_ALLOWED_DOMAINS", "example.org, *.example.net")

    settings = Settings()
    policy = approval_policy(settings)

    assert TrustConfig.with_overrides(settings.trust_sources).is_trusted("web")
    assert policy.four_eyes is True
    assert policy.approver_roles["destructive"] == frozenset({"admin"})
    assert policy.approver_roles["write"] == frozenset({"reviewer", "admin"})
    assert settings.http_allowed_domains == ["example.org", "*.example.net"]
    assert settings.files_dir == data_dir / "files"
