"""email_send: writes the message to the outbox table; a mailer delivers it later.

Sending mail is an effect outside our system that cannot be taken back, so the
tool always needs a reviewer's approval. The outbox row commits with the ledger
row, so an approved message is queued exactly once.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from store.models import OutboxEmail
from tools.types import ToolContext, ToolSpec

EMAIL = r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,63}$"


class EmailSendInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: list[Annotated[str, Field(pattern=EMAIL, max_length=320)]] = Field(
        min_length=1, max_length=20, description="Recipient addresses (name@example.org)."
    )
    subject: str = Field(min_length=1, max_length=500, description="Subject line.")
    body: str = Field(max_length=100_000, description="Plain-text message.")


class EmailSendOutput(BaseModel):
    outbox_id: int
    status: str
    recipients: list[str]


async def email_send(ctx: ToolContext, args: EmailSendInput) -> EmailSendOutput:
    row = OutboxEmail(
        tenant=ctx.principal.tenant,
        sender=ctx.principal.user,
        recipients=list(args.to),
        subject=args.subject,
        body=args.body,
        status="queued",
        run_id=ctx.run_id,
    )
    ctx.session.add(row)
    await ctx.session.flush()
    return EmailSendOutput(outbox_id=row.id, status="queued", recipients=list(args.to))


async def email_send_preview(ctx: ToolContext, args: EmailSendInput) -> dict[str, Any]:
    return {
        "would": f"send an e-mail to {', '.join(args.to)}",
        "subject": args.subject,
        "body_excerpt": args.body[:500],
        "body_chars": len(args.body),
    }


EMAIL_TOOLS = [
    ToolSpec(
        name="email_send",
        title="Send e-mail",
        description=(
            "Send a plain-text e-mail (queued in the outbox). Leaves our system: a reviewer "
            "must approve every message."
        ),
        input_model=EmailSendInput,
        output_model=EmailSendOutput,
        handler=email_send,
        risk="write",
        scope="email:send",
        approval="always",
        open_world=True,
        dry_run=email_send_preview,
        source="outbox",
    )
]
