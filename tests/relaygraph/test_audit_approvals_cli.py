"""relaygraph/audit_cli.py and approvals_cli.py: `relaygraph audit verify|list` and
`relaygraph approvals list|approve|reject` against a real store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sqlalchemy import select, update
from typer.testing import CliRunner, Result

from identity import Principal
from relaygraph.approvals_cli import approvals_app
from relaygraph.audit_cli import EXIT_CHAIN_BROKEN, audit_app
from runtime.settings import Settings
from store import Database, migrate
from store.models import AuditEntry, OutboxEmail

MAIL = {"to": ["bob@example.org"], "subject": "hi", "body": "hello"}
ANN = Principal.with_roles("acme", "ann", ["user"])


def _cli(app, *args: str) -> Result:  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _store(work):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        from tools import BUILTIN_TOOLS, ToolExecutor, ToolPolicy, ToolRegistry

        settings = Settings()
        migrate(settings.store_url)
        db = Database(settings.store_url)
        try:
            return await work(ToolExecutor(db, ToolPolicy(ToolRegistry(BUILTIN_TOOLS))))
        finally:
            await db.dispose()

    return asyncio.run(main())


def test_approve_from_the_cli_lets_the_call_run_once(data_dir: Path) -> None:
    approval_id = _store(lambda ex: ex.call_external(ANN, "email_send", MAIL)).approval.approval_id

    listed = _cli(approvals_app, "list", "--tenant", "acme", "--json")
    approved = _cli(approvals_app, "approve", approval_id, "--tenant", "acme", "--as", "rita")
    twice = _cli(approvals_app, "approve", approval_id, "--tenant", "acme", "--as", "rita")
    ran = _store(lambda ex: ex.call_external(ANN, "email_send", MAIL, approval_id=approval_id))

    assert listed.exit_code == 0
    assert [item["approval_id"] for item in json.loads(listed.stdout)] == [approval_id]
    assert approved.exit_code == 0 and f"{approval_id}: approved by rita" in approved.stdout
    assert twice.exit_code == 2 and "already approved" in twice.output
    assert ran.ok and ran.output["status"] == "queued"


def test_reject_and_unknown_ids(data_dir: Path) -> None:
    approval_id = _store(lambda ex: ex.call_external(ANN, "email_send", MAIL)).approval.approval_id

    rejected = _cli(approvals_app, "reject", approval_id, "--tenant", "acme", "--reason", "spam")
    unknown = _cli(approvals_app, "approve", "apr_missing", "--tenant", "acme")
    wrong_tenant = _cli(approvals_app, "list", "--tenant", "other")
    ran = _store(lambda ex: ex.call_external(ANN, "email_send", MAIL, approval_id=approval_id))

    assert rejected.exit_code == 0 and "rejected" in rejected.stdout
    assert unknown.exit_code == 2 and "no approval 'apr_missing'" in unknown.output
    assert "no pending approvals" in wrong_tenant.stdout
    assert ran.error.code == "approval_rejected"

    async def outbox(ex):  # type: ignore[no-untyped-def]
        async with ex.db.session() as session:
            return (await session.execute(select(OutboxEmail))).all()

    assert _store(outbox) == []


def test_audit_verify_passes_then_detects_tampering(data_dir: Path) -> None:
    _store(lambda ex: ex.call_external(ANN, "notes_create", {"title": "t", "body": "b"}))
    _store(lambda ex: ex.call_external(ANN, "notes_search", {"query": ""}))

    good = _cli(audit_app, "verify")
    listed = _cli(audit_app, "list", "--tenant", "acme", "--json")

    async def tamper(ex):  # type: ignore[no-untyped-def]
        async with ex.db.transaction() as session:
            await session.execute(update(AuditEntry).where(AuditEntry.seq == 1).values(actor="eve"))

    _store(tamper)
    bad = _cli(audit_app, "verify", "--json")

    assert good.exit_code == 0 and "audit chain OK: 2 entries" in good.stdout
    assert [entry["tool"] for entry in json.loads(listed.stdout)] == [
        "notes_search",
        "notes_create",
    ]
    assert bad.exit_code == EXIT_CHAIN_BROKEN
    report = json.loads(bad.stdout)
    assert report["ok"] is False and report["problems"][0].startswith("entry 1:")
