"""What a gate's interrupt showed its reviewer, and whether that still holds at resume.

A reviewer decides on the dry run the interrupt showed ("delete note 4 ('Launch')").
The run may resume days later, after restarts; by then the target may have changed.
Each round of the interrupt is recorded when it is raised (``ApprovalService.record_shown``,
keyed by thread, task, call and round, so every re-run of the node finds the same
record), and at resume every approved or edited action's dry run is repeated: if one
changed, nothing runs, the stale decision is audited, and the interrupt is raised
again showing the fresh dry run. The reviewer decides again on what the call would do
now, as an external caller whose approval went stale must ask for a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langgraph.runtime import Runtime

from graphs.context import RunContext
from graphs.interrupts import Decision, approval_request
from tools import ToolCall
from tools.approvals import ShownAction, shown_record_id
from tools.executor import plain_preview, preview_changed, what_it_would
from tools.policy import PolicyDecision


@dataclass(frozen=True)
class Proposal:
    """A call waiting for a reviewer, with its dry run as of this execution of the node."""

    call: ToolCall
    reason: str
    risk: str
    preview: dict[str, Any]


async def propose(ctx: RunContext, call: ToolCall, decision: PolicyDecision) -> Proposal:
    """The call with what it would do (its dry run, touching nothing), so the reviewer
    sees "delete note 3 ('plans')" rather than bare arguments."""
    assert decision.tool is not None and decision.args is not None
    preview = await ctx.tools.preview(decision.tool, decision.args, ctx.principal)
    return Proposal(call, decision.reason, decision.tool.risk, plain_preview(preview))


def described(reason: str, preview: dict[str, Any]) -> str:
    if preview.get("would") or preview.get("would_fail"):
        return f"{reason}; it would {what_it_would(preview)}"
    return reason


class InterruptReview:
    """The rounds of one gate interrupt: what each showed, and the check at resume."""

    def __init__(
        self, ctx: RunContext, runtime: Runtime[RunContext], proposals: list[Proposal]
    ) -> None:
        self.ctx = ctx
        self.proposals = proposals
        info = runtime.execution_info
        self.place = (
            (info.thread_id, info.checkpoint_ns, info.task_id)
            if info is not None and info.thread_id is not None
            else None
        )
        self.thread_id = info.thread_id if info is not None else None
        self.round = 0
        self.shown: list[ShownAction] = []
        self.before: list[ShownAction] = []
        """The previous round (after a stale decision), for saying what changed."""

    def _actions(self) -> list[ShownAction]:
        actions = []
        for proposal in self.proposals:
            record_id = (
                shown_record_id(*self.place, proposal.call.id, self.round) if self.place else ""
            )
            actions.append(
                ShownAction(
                    record_id=record_id,
                    tool=proposal.call.name,
                    risk=proposal.risk,
                    args=proposal.call.args,
                    reason=proposal.reason,
                    preview=proposal.preview,
                )
            )
        return actions

    async def request(self) -> dict[str, Any]:
        """The interrupt payload of the current round, as first recorded: a re-run of the
        node shows (and later checks against) what the reviewer was really shown."""
        actions = self._actions()
        if self.place is None:  # no thread (no checkpointer): nothing outlives this call
            self.shown = actions
        else:
            self.shown = await self.ctx.tools.approvals.record_shown(
                principal=self.ctx.principal, actions=actions
            )
        return self._payload()

    def _payload(self) -> dict[str, Any]:
        pending = [
            (proposal.call, described(shown.reason, shown.preview))
            for proposal, shown in zip(self.proposals, self.shown, strict=True)
        ]
        request = approval_request(pending, self.ctx.tools.registry)
        if not self.before:
            return request
        for action, old, new in zip(
            request["action_requests"], self.before, self.shown, strict=True
        ):
            if preview_changed(old.preview, new.preview):
                note = (
                    "The target changed after the last decision, which was not carried out "
                    f"(it was: {what_it_would(old.preview)}; it would now "
                    f"{what_it_would(new.preview)}). Decide again."
                )
            else:
                note = "Asked again because another action in this request changed."
            action["description"] = f"{note} {action['description']}"
        return request

    async def still_as_shown(self, decisions: list[Decision], reviewer: str) -> bool:
        """Whether the decisions can be carried out: every approved or edited action's
        dry run still shows what the reviewer was shown. If not, the stale decisions are
        audited and :meth:`request` then asks again with the fresh dry runs."""
        if any(shown.stale for shown in self.shown):
            # A re-run of the node: this round was found stale when it was answered.
            await self._next_round(None)
            return False
        changed = [
            (proposal, shown, choice)
            for proposal, shown, choice in zip(self.proposals, self.shown, decisions, strict=True)
            if choice.type != "reject" and preview_changed(shown.preview, proposal.preview)
        ]
        if not changed:
            return True
        for proposal, shown, choice in changed:
            await self.ctx.tools.record_stale_decision(
                proposal.call,
                self.ctx.principal,
                decided_by=reviewer,
                decision="approved" if choice.type == "approve" else "edited",
                shown=shown.preview,
                current=proposal.preview,
                run_id=self.ctx.run_id,
                thread_id=self.thread_id,
            )
        note = "; ".join(
            f"{proposal.call.name} ({proposal.call.id}) would now {what_it_would(proposal.preview)}"
            for proposal, _shown, _choice in changed
        )
        await self._next_round(note)
        return False

    async def _next_round(self, stale_note: str | None) -> None:
        """Move on to the next round; ``stale_note``: this round was just found stale
        (marked so that a re-run of the node moves on without checking again)."""
        if stale_note is not None and self.place is not None:
            await self.ctx.tools.approvals.mark_shown_stale(
                principal=self.ctx.principal,
                record_ids=[action.record_id for action in self.shown],
                note=stale_note,
            )
        self.before = self.shown
        self.round += 1
