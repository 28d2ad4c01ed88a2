"""Approvals for calls made outside a graph (MCP clients, the API, the CLI).

A call that needs a human gets a pending approval bound to its tenant, requester,
tool and the hash of its validated arguments. A reviewer whose role may approve
that risk level approves or rejects it; the caller then repeats the call with the
approval's id, which :meth:`ApprovalService.consume` turns from ``approved`` into
``used`` in one conditional update: single-use even under concurrent repeats.
Approvals expire. Every request, decision and use is written to the audit chain.

The same table keeps what a graph interrupt showed its reviewer (``via="interrupt"``,
:meth:`ApprovalService.record_shown`): the dry run each action had when it was asked, so
a resume days later can tell whether the target changed since. Those records are never
usable as approvals (a graph's decision arrives by resuming the run) and stay out of
every listing and decision of this door.
"""

from __future__ import annotations

import hashlib
import secrets
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from identity import Principal
from store import Database
from store.models import Approval as ApprovalRow
from store.models import utcnow
from tools.audit import AuditLog, AuditRecord
from tools.types import Risk, ToolError, ToolSpec
from tools.types import args_hash as _args_digest

ApprovalStatus = Literal["pending", "approved", "rejected", "used", "expired"]
Door = Literal["approval", "interrupt"]
"""How a decision arrives: an approval of an external (MCP) call, or the resume of a
graph run's interrupt."""
REQUESTER = "requester"
"""Pseudo-role in approver roles: whoever made the call may decide it (not under four-eyes)."""
DEFAULT_APPROVER_ROLES: dict[str, frozenset[str]] = {
    "read": frozenset({"reviewer", "admin"}),
    "write": frozenset({"reviewer", "admin"}),
    "destructive": frozenset({"reviewer", "admin"}),
}
DEFAULT_INTERRUPT_APPROVER_ROLES: dict[str, frozenset[str]] = {
    risk: roles | {REQUESTER} for risk, roles in DEFAULT_APPROVER_ROLES.items()
}
"""A chat user confirms their own agent's action unless configuration says otherwise."""
INTERRUPT_VIA = "interrupt"
"""``via`` of the records of what a graph interrupt showed (``ApprovalService.record_shown``)."""


class ApprovalError(ToolError):
    """An approval cannot be used or decided. Codes: ``approval_not_found``,
    ``approval_pending``, ``approval_rejected``, ``approval_expired``, ``approval_used``,
    ``approval_mismatch``, ``approval_forbidden``, ``approval_decided``, ``approval_stale``
    (the call's dry run no longer shows what the reviewer approved)."""


@dataclass(frozen=True)
class ApprovalPolicy:
    """Who may decide which risk level, four-eyes, and how long an approval lives.

    The one home of the rule for both doors: approvals of external calls
    (``approver_roles``) and the resume of a graph's interrupt (``interrupt_approver_roles``,
    which by default also lets the requester confirm their own call). The pseudo-role
    :data:`REQUESTER` stands for whoever made the call; four-eyes overrides it.
    """

    approver_roles: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: dict(DEFAULT_APPROVER_ROLES)
    )
    four_eyes: bool = False
    ttl_seconds: float = 3600.0
    interrupt_approver_roles: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: dict(DEFAULT_INTERRUPT_APPROVER_ROLES)
    )

    @classmethod
    def configured(
        cls,
        overrides: Mapping[str, Iterable[str]],
        *,
        four_eyes: bool = False,
        ttl_seconds: float = 3600.0,
    ) -> ApprovalPolicy:
        """The policy with ``overrides`` (risk → roles) applied to both doors: a risk
        configured as ``["admin"]`` needs an admin whoever asks and however it arrives."""
        configured = {risk: frozenset(roles) for risk, roles in overrides.items()}
        return cls(
            approver_roles={**DEFAULT_APPROVER_ROLES, **configured},
            four_eyes=four_eyes,
            ttl_seconds=ttl_seconds,
            interrupt_approver_roles={**DEFAULT_INTERRUPT_APPROVER_ROLES, **configured},
        )

    def roles_for(self, risk: str, door: Door = "approval") -> frozenset[str]:
        table = self.interrupt_approver_roles if door == "interrupt" else self.approver_roles
        return table.get(risk, frozenset())

    def may_approve(self, approver: Principal, risk: str) -> bool:
        return bool(approver.roles & self.approver_roles.get(risk, frozenset()))

    def refusal(
        self, decider: Principal, *, risk: str, requester: str, door: Door = "approval"
    ) -> str | None:
        """Why ``decider`` may not decide ``requester``'s ``risk`` call, or None if they may."""
        own = decider.user == requester
        roles = self.roles_for(risk, door)
        if self.four_eyes and own:
            return (
                f"four-eyes policy: {requester!r} made this {risk} call and cannot decide it "
                "themselves; ask another reviewer"
            )
        if decider.roles & roles or (own and REQUESTER in roles):
            return None
        allowed = ", ".join(sorted(roles)) or "none"
        return f"{decider.user!r} may not decide {risk} calls; roles that may: {allowed}"

    def check_decider(
        self, decider: Principal, *, risk: str, requester: str, door: Door = "approval"
    ) -> None:
        """Raises:
        ApprovalError: ``approval_forbidden`` when the role or four-eyes rule refuses."""
        reason = self.refusal(decider, risk=risk, requester=requester, door=door)
        if reason is not None:
            raise ApprovalError("approval_forbidden", reason)


@dataclass(frozen=True)
class Approval:
    approval_id: str
    tenant: str
    requester: str
    via: str
    tool: str
    risk: Risk
    args: dict[str, Any]
    args_hash: str
    reason: str
    preview: dict[str, Any]
    status: ApprovalStatus
    created_at: datetime
    expires_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str | None
    used_at: datetime | None

    @classmethod
    def from_row(cls, row: ApprovalRow, now: datetime | None = None) -> Approval:
        status = row.status
        if status in ("pending", "approved") and row.expires_at <= (now or utcnow()):
            status = "expired"
        return cls(
            approval_id=row.approval_id,
            tenant=row.tenant,
            requester=row.requester,
            via=row.via,
            tool=row.tool,
            risk=row.risk,  # type: ignore[arg-type]
            args=row.args,
            args_hash=row.args_hash,
            reason=row.reason,
            preview=row.preview or {},
            status=status,  # type: ignore[arg-type]
            created_at=row.created_at,
            expires_at=row.expires_at,
            decided_by=row.decided_by,
            decided_at=row.decided_at,
            decision_note=row.decision_note,
            used_at=row.used_at,
        )

    def to_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "approval_id": self.approval_id,
            "tenant": self.tenant,
            "requester": self.requester,
            "via": self.via,
            "tool": self.tool,
            "risk": self.risk,
            "args": self.args,
            "args_hash": self.args_hash,
            "reason": self.reason,
            "preview": self.preview,
            "status": self.status,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "decided_by": self.decided_by,
            "decided_at": iso(self.decided_at),
            "decision_note": self.decision_note,
            "used_at": iso(self.used_at),
        }


@dataclass(frozen=True)
class ShownAction:
    """One action of a graph interrupt as its reviewer was shown it: the call and the
    dry run (``preview``) the decision is about. ``stale``: a resume found that the dry
    run had changed since, so the action was asked again (a later round)."""

    record_id: str
    tool: str
    risk: str
    args: dict[str, Any]
    reason: str
    preview: dict[str, Any]
    stale: bool = False


def shown_record_id(
    thread_id: str, checkpoint_ns: str, task_id: str, call_id: str, round_: int
) -> str:
    """The id of what round ``round_`` of a graph interrupt showed for ``call_id``: stable
    across replays and restarts (the task id is), so every re-run of the node finds it."""
    digest = hashlib.sha256(
        "\x1f".join((thread_id, checkpoint_ns, task_id, call_id, str(round_))).encode()
    ).hexdigest()
    return f"int_{digest[:40]}"


def approve_command(approval_id: str, tenant: str) -> str:
    """The CLI command a reviewer runs to approve ``approval_id``. It names the tenant:
    approvals live in the requester's tenant and the CLI's default is ``default``."""
    return f"relaygraph approvals approve {approval_id} --tenant {shlex.quote(tenant)}"


def _not_found(approval_id: str, tenant: str) -> ApprovalError:
    return ApprovalError(
        "approval_not_found",
        f"there is no approval {approval_id!r} in your tenant; "
        f"`relaygraph approvals list --tenant {shlex.quote(tenant)}` shows pending ones",
    )


class ApprovalService:
    def __init__(self, db: Database, audit: AuditLog, policy: ApprovalPolicy | None = None) -> None:
        self.db = db
        self.audit = audit
        self.policy = policy or ApprovalPolicy()

    async def request(
        self,
        *,
        principal: Principal,
        tool: ToolSpec,
        args: dict[str, Any],
        args_hash: str,
        reason: str,
        preview: dict[str, Any],
        via: str = "mcp",
    ) -> Approval:
        """Record a pending approval for ``principal``'s call of ``tool`` with ``args``."""
        now = utcnow()
        row = ApprovalRow(
            approval_id=f"apr_{secrets.token_urlsafe(12)}",
            tenant=principal.tenant,
            requester=principal.user,
            via=via,
            tool=tool.name,
            risk=tool.risk,
            args=args,
            args_hash=args_hash,
            reason=reason,
            preview=preview,
            status="pending",
            created_at=now,
            expires_at=now + timedelta(seconds=self.policy.ttl_seconds),
        )
        async with self.db.transaction() as session:
            session.add(row)
        approval = Approval.from_row(row, now)
        await self._audit(approval, "approval_request", principal.user, "pending", None)
        return approval

    async def record_shown(
        self, *, principal: Principal, actions: list[ShownAction]
    ) -> list[ShownAction]:
        """Record what a graph interrupt shows its reviewer, unless already recorded (a
        re-run of the node after a resume or restart), and return what was recorded
        first: what the reviewer actually saw."""
        ids = [action.record_id for action in actions]
        async with self.db.session() as session:
            found = {
                key: _shown(row) for key, row in (await self._shown_rows(session, ids)).items()
            }
        missing = [action for action in actions if action.record_id not in found]
        if missing:
            try:
                async with self.db.transaction() as session:
                    session.add_all(_shown_row(principal, action) for action in missing)
                found.update((action.record_id, action) for action in missing)
            except IntegrityError:  # recorded meanwhile by another execution of the task
                async with self.db.session() as session:
                    rows = await self._shown_rows(session, ids)
                found = {key: _shown(row) for key, row in rows.items()}
        return [found[action.record_id] for action in actions]

    async def mark_shown_stale(
        self, *, principal: Principal, record_ids: list[str], note: str
    ) -> None:
        """Mark a round of a graph interrupt stale: its dry runs changed before the
        decision could be carried out, so the reviewer is asked again (the next round).
        A re-run of the node finds the mark and moves on to that round; a crash before
        the mark leaves the round to be found stale again."""
        async with self.db.transaction() as session:
            await session.execute(
                update(ApprovalRow)
                .where(
                    ApprovalRow.approval_id.in_(record_ids),
                    ApprovalRow.via == INTERRUPT_VIA,
                    ApprovalRow.tenant == principal.tenant,
                )
                .values(status="stale", decision_note=note)
            )

    @staticmethod
    async def _shown_rows(session: Any, ids: list[str]) -> dict[str, ApprovalRow]:
        rows = await session.scalars(
            select(ApprovalRow).where(
                ApprovalRow.approval_id.in_(ids), ApprovalRow.via == INTERRUPT_VIA
            )
        )
        return {row.approval_id: row for row in rows}

    async def get(self, approval_id: str, *, principal: Principal) -> Approval:
        """Raises:
        ApprovalError: ``approval_not_found`` (also for another tenant's approval)."""
        async with self.db.session() as session:
            row = await session.get(ApprovalRow, approval_id)
        if row is None or row.tenant != principal.tenant or row.via == INTERRUPT_VIA:
            raise _not_found(approval_id, principal.tenant)
        return Approval.from_row(row)

    async def list_approvals(
        self, *, principal: Principal, status: ApprovalStatus | None = "pending", limit: int = 50
    ) -> list[Approval]:
        """The tenant's approvals in ``status`` (None: all), newest first. Expired ones
        show as ``expired`` whatever their stored status."""
        now = utcnow()
        statement = (
            select(ApprovalRow)
            .where(ApprovalRow.tenant == principal.tenant, ApprovalRow.via != INTERRUPT_VIA)
            .order_by(ApprovalRow.created_at.desc())
            .limit(limit)
        )
        if status in ("pending", "approved"):
            statement = statement.where(ApprovalRow.status == status, ApprovalRow.expires_at > now)
        elif status in ("rejected", "used"):
            statement = statement.where(ApprovalRow.status == status)
        elif status == "expired":
            statement = statement.where(
                ApprovalRow.status.in_(("pending", "approved")), ApprovalRow.expires_at <= now
            )
        async with self.db.session() as session:
            rows = (await session.scalars(statement)).all()
        return [Approval.from_row(row, now) for row in rows]

    async def approve(
        self, approval_id: str, *, approver: Principal, note: str | None = None
    ) -> Approval:
        """Raises:
        ApprovalError: not found, forbidden (role, four-eyes), expired or decided."""
        return await self._decide(approval_id, approver, "approved", note)

    async def reject(
        self, approval_id: str, *, approver: Principal, reason: str | None = None
    ) -> Approval:
        """Raises:
        ApprovalError: not found, forbidden (role, four-eyes), expired or decided."""
        return await self._decide(approval_id, approver, "rejected", reason)

    async def _decide(
        self, approval_id: str, approver: Principal, outcome: str, note: str | None
    ) -> Approval:
        now = utcnow()
        async with self.db.transaction() as session:
            row = await session.get(ApprovalRow, approval_id)
            if row is None or row.tenant != approver.tenant or row.via == INTERRUPT_VIA:
                raise _not_found(approval_id, approver.tenant)
            self.policy.check_decider(approver, risk=row.risk, requester=row.requester)
            current = Approval.from_row(row, now)
            if current.status == "expired":
                raise ApprovalError(
                    "approval_expired",
                    f"approval {approval_id} expired at {row.expires_at:%Y-%m-%d %H:%M} UTC; "
                    "the caller must ask again",
                )
            if current.status != "pending":
                raise ApprovalError(
                    "approval_decided",
                    f"approval {approval_id} is already {current.status} "
                    f"(by {row.decided_by or 'nobody'})",
                )
            row.status = outcome
            row.decided_by = approver.user
            row.decided_at = now
            row.decision_note = note
            approval = Approval.from_row(row, now)
        await self._audit(approval, "approval_decision", approver.user, outcome, approver.user)
        return approval

    async def consume(
        self, approval_id: str, *, principal: Principal, tool: str, args_hash: str
    ) -> Approval:
        """Use an approval for the call it was given for, once.

        Raises:
            ApprovalError: ``approval_not_found``, ``approval_mismatch`` (other requester,
                tool or arguments), ``approval_pending``, ``approval_rejected``,
                ``approval_expired``, ``approval_used``.
        """
        now = utcnow()
        async with self.db.transaction() as session:
            row = await session.get(ApprovalRow, approval_id)
            if row is None or row.tenant != principal.tenant or row.via == INTERRUPT_VIA:
                raise _not_found(approval_id, principal.tenant)
            if row.requester != principal.user or row.tool != tool:
                raise ApprovalError(
                    "approval_mismatch",
                    f"approval {approval_id} was given for another call "
                    f"({row.tool} by {row.requester}); ask for a new one",
                )
            if row.args_hash != args_hash:
                raise ApprovalError(
                    "approval_mismatch",
                    f"approval {approval_id} was given for other arguments of {tool}; "
                    "repeat the call with exactly the approved arguments, or ask again",
                )
            state = Approval.from_row(row, now).status
            if state != "approved":
                raise _unusable(approval_id, state, row)
            used = await session.execute(
                update(ApprovalRow)
                .where(
                    ApprovalRow.approval_id == approval_id,
                    ApprovalRow.status == "approved",
                    ApprovalRow.expires_at > now,
                )
                .values(status="used", used_at=now)
            )
            if used.rowcount != 1:  # type: ignore[attr-defined]
                raise _unusable(approval_id, "used", row)
            row.status, row.used_at = "used", now
            return Approval.from_row(row, now)

    async def _audit(
        self, approval: Approval, event: str, actor: str, status: str, approver: str | None
    ) -> None:
        await self.audit.append(
            AuditRecord(
                event=event,
                tenant=approval.tenant,
                actor=actor,
                via=approval.via,
                tool=approval.tool,
                decision=status,
                status=status,
                approver=approver,
                approval_id=approval.approval_id,
                args=approval.args,
                result={"note": approval.decision_note} if approval.decision_note else None,
            )
        )


def _shown_row(principal: Principal, action: ShownAction) -> ApprovalRow:
    now = utcnow()
    return ApprovalRow(
        approval_id=action.record_id,
        tenant=principal.tenant,
        requester=principal.user,
        via=INTERRUPT_VIA,
        tool=action.tool,
        risk=action.risk,
        args=action.args,
        args_hash=_args_digest(action.tool, action.args),
        reason=action.reason,
        preview=action.preview,
        status="shown",
        created_at=now,
        expires_at=now,  # never usable as an approval of the external door
    )


def _shown(row: ApprovalRow) -> ShownAction:
    return ShownAction(
        record_id=row.approval_id,
        tool=row.tool,
        risk=row.risk,
        args=row.args,
        reason=row.reason,
        preview=row.preview or {},
        stale=row.status == "stale",
    )


def _unusable(approval_id: str, state: str, row: ApprovalRow) -> ApprovalError:
    messages = {
        "pending": (
            "approval_pending",
            f"approval {approval_id} has not been decided yet; ask a reviewer "
            f"(`{approve_command(approval_id, row.tenant)}`), then repeat the call",
        ),
        "rejected": (
            "approval_rejected",
            f"approval {approval_id} was rejected by {row.decided_by}: "
            f"{row.decision_note or 'no reason given'}",
        ),
        "expired": (
            "approval_expired",
            f"approval {approval_id} expired at {row.expires_at:%Y-%m-%d %H:%M} UTC; "
            "repeat the call without approval_id to ask again",
        ),
        "used": (
            "approval_used",
            f"approval {approval_id} was already used (approvals are single-use); "
            "repeat the call without approval_id to ask again",
        ),
    }
    code, message = messages.get(state, ("approval_mismatch", f"approval is {state}"))
    return ApprovalError(code, message)
