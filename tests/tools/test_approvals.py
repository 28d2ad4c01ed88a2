"""tools/approvals.py through ToolExecutor.call_external: the approval round trip of
callers outside a graph — bound to the arguments, single-use, expiring, audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from identity import Principal
from store.models import Approval as ApprovalRow
from store.models import AuditEntry, Note, OutboxEmail, utcnow
from tools import ApprovalError, ApprovalPolicy, ApprovalService
from tools.approvals import approve_command

ANN = Principal.with_roles("acme", "ann", ["user"])
RITA = Principal.with_roles("acme", "rita", ["reviewer"])
OTTO = Principal.with_roles("other", "otto", ["admin"])
MAIL = {"to": ["bob@example.org"], "subject": "hi", "body": "hello"}


async def _count(system, model) -> int:  # type: ignore[no-untyped-def]
    async with system.db.session() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def _ask(system, args=MAIL):  # type: ignore[no-untyped-def]
    outcome = await system.executor.call_external(ANN, "email_send", args)
    assert outcome.status == "approval_required" and outcome.approval is not None
    return outcome


async def test_round_trip_ask_approve_repeat(system) -> None:  # type: ignore[no-untyped-def]
    asked = await _ask(system)
    ticket = asked.approval
    assert ticket.tool == "email_send" and ticket.risk == "write"
    assert ticket.preview["would"] == "send an e-mail to bob@example.org"
    assert ticket.approval_id in asked.error.message and "approval_id" in asked.error.message
    # The suggested command names the requester's tenant: the CLI's default is 'default'.
    command = f"`relaygraph approvals approve {ticket.approval_id} --tenant acme`"
    assert command in asked.error.message
    assert await _count(system, OutboxEmail) == 0

    [pending] = await system.executor.approvals.list_approvals(principal=RITA)
    assert pending.approval_id == ticket.approval_id and pending.requester == "ann"
    approved = await system.executor.approvals.approve(ticket.approval_id, approver=RITA)
    assert (approved.status, approved.decided_by) == ("approved", "rita")

    done = await system.executor.call_external(
        ANN, "email_send", MAIL, approval_id=ticket.approval_id
    )

    assert done.ok and done.status == "ok" and done.output["status"] == "queued"
    assert await _count(system, OutboxEmail) == 1
    async with system.db.session() as session:
        last = (
            await session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1))
        ).one()
    assert (last.tool, last.decision, last.status, last.approver, last.approval_id) == (
        "email_send",
        "approved",
        "ok",
        "rita",
        ticket.approval_id,
    )


async def test_an_approval_is_single_use(system) -> None:  # type: ignore[no-untyped-def]
    ticket = (await _ask(system)).approval
    await system.executor.approvals.approve(ticket.approval_id, approver=RITA)
    first = await system.executor.call_external(
        ANN, "email_send", MAIL, approval_id=ticket.approval_id
    )

    again = await system.executor.call_external(
        ANN, "email_send", MAIL, approval_id=ticket.approval_id
    )

    assert first.ok
    assert again.status == "denied" and again.error.code == "approval_used"
    assert await _count(system, OutboxEmail) == 1


async def test_an_approval_is_bound_to_the_arguments(system) -> None:  # type: ignore[no-untyped-def]
    ticket = (await _ask(system)).approval
    await system.executor.approvals.approve(ticket.approval_id, approver=RITA)
    evil = {**MAIL, "to": ["x@evil.test"]}

    swapped = await system.executor.call_external(
        ANN, "email_send", evil, approval_id=ticket.approval_id
    )
    reordered = await system.executor.call_external(
        ANN, "email_send", dict(reversed(list(MAIL.items()))), approval_id=ticket.approval_id
    )

    assert swapped.error.code == "approval_mismatch"
    assert reordered.ok  # the same arguments in another key order are the same call
    assert await _count(system, OutboxEmail) == 1


async def test_an_approval_is_bound_to_the_requester_and_tenant(system) -> None:  # type: ignore[no-untyped-def]
    ticket = (await _ask(system)).approval
    await system.executor.approvals.approve(ticket.approval_id, approver=RITA)
    eve = Principal.with_roles("acme", "eve", ["user"])

    by_eve = await system.executor.call_external(
        eve, "email_send", MAIL, approval_id=ticket.approval_id
    )
    by_otto = await system.executor.call_external(
        OTTO, "email_send", MAIL, approval_id=ticket.approval_id
    )

    assert by_eve.error.code == "approval_mismatch"
    assert by_otto.error.code == "approval_not_found"
    assert "`relaygraph approvals list --tenant other`" in by_otto.error.message


async def test_pending_and_rejected_approvals_do_not_run(system) -> None:  # type: ignore[no-untyped-def]
    ticket = (await _ask(system)).approval

    early = await system.executor.call_external(
        ANN, "email_send", MAIL, approval_id=ticket.approval_id
    )
    await system.executor.approvals.reject(ticket.approval_id, approver=RITA, reason="spam")
    late = await system.executor.call_external(
        ANN, "email_send", MAIL, approval_id=ticket.approval_id
    )

    assert early.error.code == "approval_pending"
    assert f"approvals approve {ticket.approval_id} --tenant acme`" in early.error.message
    assert late.error.code == "approval_rejected" and "spam" in late.error.message
    assert await _count(system, OutboxEmail) == 0


async def test_approvals_expire(system) -> None:  # type: ignore[no-untyped-def]
    ticket = (await _ask(system)).approval
    await system.executor.approvals.approve(ticket.approval_id, approver=RITA)
    async with system.db.transaction() as session:
        await session.execute(
            update(ApprovalRow).values(expires_at=utcnow() - timedelta(seconds=1))
        )

    outcome = await system.executor.call_external(
        ANN, "email_send", MAIL, approval_id=ticket.approval_id
    )

    assert outcome.error.code == "approval_expired"
    [expired] = await system.executor.approvals.list_approvals(principal=RITA, status="expired")
    assert expired.approval_id == ticket.approval_id


async def test_a_user_cannot_approve_and_other_tenants_cannot_see(system) -> None:  # type: ignore[no-untyped-def]
    ticket = (await _ask(system)).approval

    with pytest.raises(ApprovalError) as by_user:
        await system.executor.approvals.approve(ticket.approval_id, approver=ANN)
    with pytest.raises(ApprovalError) as by_other_tenant:
        await system.executor.approvals.approve(ticket.approval_id, approver=OTTO)

    assert by_user.value.code == "approval_forbidden"
    assert by_other_tenant.value.code == "approval_not_found"
    assert await system.executor.approvals.list_approvals(principal=OTTO) == []


async def test_a_decision_is_final(system) -> None:  # type: ignore[no-untyped-def]
    ticket = (await _ask(system)).approval
    await system.executor.approvals.reject(ticket.approval_id, approver=RITA)

    with pytest.raises(ApprovalError) as again:
        await system.executor.approvals.approve(ticket.approval_id, approver=RITA)

    assert again.value.code == "approval_decided"


async def test_four_eyes_stops_self_approval_and_risk_levels_pick_approvers(system) -> None:  # type: ignore[no-untyped-def]
    service = ApprovalService(
        system.db,
        system.executor.audit,
        ApprovalPolicy(
            approver_roles={"write": frozenset({"reviewer"}), "destructive": frozenset({"admin"})},
            four_eyes=True,
        ),
    )
    system.executor.approvals = service
    rita_asks = await system.executor.call_external(RITA, "email_send", MAIL)
    async with system.db.transaction() as session:
        session.add(Note(tenant="acme", owner="rita", title="n", body=""))
    delete = await system.executor.call_external(RITA, "notes_delete", {"note_id": 1})

    with pytest.raises(ApprovalError) as own:
        await service.approve(rita_asks.approval.approval_id, approver=RITA)
    with pytest.raises(ApprovalError) as reviewer_on_destructive:
        await service.approve(
            delete.approval.approval_id, approver=Principal.with_roles("acme", "rex", ["reviewer"])
        )
    other = await service.approve(
        rita_asks.approval.approval_id, approver=Principal.with_roles("acme", "rex", ["reviewer"])
    )
    admin = await service.approve(
        delete.approval.approval_id, approver=Principal.with_roles("acme", "ada", ["admin"])
    )

    assert own.value.code == "approval_forbidden" and "four-eyes" in own.value.message
    assert reviewer_on_destructive.value.code == "approval_forbidden"
    assert (other.status, admin.status) == ("approved", "approved")


async def test_decisions_are_audited_with_the_approver(system) -> None:  # type: ignore[no-untyped-def]
    ticket = (await _ask(system)).approval
    await system.executor.approvals.reject(ticket.approval_id, approver=RITA, reason="no")

    entries = await system.executor.audit.entries(tenant="acme", with_payloads=True)

    decision = entries[0]
    assert (decision["event"], decision["decision"], decision["approver"], decision["actor"]) == (
        "approval_decision",
        "rejected",
        "rita",
        "rita",
    )
    assert decision["approval_id"] == ticket.approval_id and decision["result"] == {"note": "no"}


async def test_destructive_preview_shows_what_would_go_and_touches_nothing(system) -> None:  # type: ignore[no-untyped-def]
    created = await system.executor.call_external(
        ANN, "notes_create", {"title": "plans", "body": "x"}
    )
    asked = await system.executor.call_external(
        ANN, "notes_delete", {"note_id": created.output["id"]}
    )

    assert asked.approval.preview["note"]["title"] == "plans"
    assert "delete note" in asked.approval.preview["would"]
    assert await _count(system, Note) == 1


async def test_an_approval_id_for_a_call_that_needs_none_is_ignored(system) -> None:  # type: ignore[no-untyped-def]
    outcome = await system.executor.call_external(
        ANN, "notes_search", {"query": ""}, approval_id="apr_bogus"
    )

    assert outcome.ok


async def test_visible_tools_follow_effective_scopes(system) -> None:  # type: ignore[no-untyped-def]
    reader = Principal("acme", "rea", scopes=frozenset({"notes:read", "tickets:read"}))

    names = [tool.name for tool in system.executor.tools_for(reader)]
    narrowed = [tool.name for tool in system.executor.tools_for(ANN, allowed_scopes={"notes:read"})]

    assert names == ["notes_search", "tickets_search"]
    assert narrowed == ["notes_search"]


def test_the_suggested_command_quotes_an_unusual_tenant() -> None:
    command = approve_command("apr_x1", "acme corp; rm -rf ~")

    assert command == "relaygraph approvals approve apr_x1 --tenant 'acme corp; rm -rf ~'"


async def test_an_approval_does_not_cover_a_target_changed_since(system) -> None:  # type: ignore[no-untyped-def]
    created = await system.executor.call_external(
        ANN, "notes_create", {"title": "plans", "body": "x"}
    )
    note_id = created.output["id"]
    asked = await system.executor.call_external(ANN, "notes_delete", {"note_id": note_id})
    await system.executor.approvals.approve(asked.approval.approval_id, approver=RITA)
    edited = await system.executor.call_external(
        ANN, "notes_update", {"note_id": note_id, "title": "contract draft", "body": "y" * 50}
    )
    assert edited.ok

    stale = await system.executor.call_external(
        ANN, "notes_delete", {"note_id": note_id}, approval_id=asked.approval.approval_id
    )

    assert stale.status == "denied" and stale.error.code == "approval_stale"
    assert "'plans'" in stale.error.message and "'contract draft'" in stale.error.message
    assert await _count(system, Note) == 1
    # Unchanged, the same kind of approval still works.
    again = await system.executor.call_external(ANN, "notes_delete", {"note_id": note_id})
    await system.executor.approvals.approve(again.approval.approval_id, approver=RITA)
    done = await system.executor.call_external(
        ANN, "notes_delete", {"note_id": note_id}, approval_id=again.approval.approval_id
    )
    assert done.ok and await _count(system, Note) == 0
    # Used once, it is "used" (not "stale", though the note is gone now).
    reused = await system.executor.call_external(
        ANN, "notes_delete", {"note_id": note_id}, approval_id=again.approval.approval_id
    )
    assert reused.error.code == "approval_used"
