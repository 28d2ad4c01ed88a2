"""Tools registered only in tests: a trivial one, a slow one that reports progress, and a
slow writer whose effect must not happen when the call is cancelled."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict, Field

from store.models import Note
from tools.types import ToolContext, ToolSpec


class EchoInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=1000, description="Text to send back.")


class EchoOutput(BaseModel):
    text: str


async def echo(ctx: ToolContext, args: EchoInput) -> EchoOutput:
    return EchoOutput(text=args.text)


class SlowInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = Field(ge=1, le=50, description="How many steps to take.")
    step_seconds: float = Field(default=0.05, ge=0, le=5, description="Seconds per step.")


class SlowOutput(BaseModel):
    steps: int


async def slow_count(ctx: ToolContext, args: SlowInput) -> SlowOutput:
    for step in range(1, args.steps + 1):
        await asyncio.sleep(args.step_seconds)
        await ctx.report_progress(step, args.steps, f"step {step}")
    return SlowOutput(steps=args.steps)


class SlowWriteInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=100, description="Title of the note.")
    seconds: float = Field(ge=0, le=30, description="How long to wait before writing.")


class SlowWriteOutput(BaseModel):
    id: int


async def slow_write(ctx: ToolContext, args: SlowWriteInput) -> SlowWriteOutput:
    await ctx.report_progress(0.5, 1, "waiting")
    await asyncio.sleep(args.seconds)
    note = Note(tenant=ctx.principal.tenant, owner=ctx.principal.user, title=args.title, body="")
    ctx.session.add(note)
    await ctx.session.flush()
    return SlowWriteOutput(id=note.id)


TEST_TOOLS = [
    ToolSpec(
        name="echo",
        description="Send the text back.",
        input_model=EchoInput,
        output_model=EchoOutput,
        handler=echo,
        risk="read",
        scope="notes:read",
        idempotent=True,
    ),
    ToolSpec(
        name="slow_count",
        description="Count slowly, reporting progress.",
        input_model=SlowInput,
        output_model=SlowOutput,
        handler=slow_count,
        risk="read",
        scope="notes:read",
        idempotent=True,
    ),
    ToolSpec(
        name="slow_write",
        description="Wait, then create a note.",
        input_model=SlowWriteInput,
        output_model=SlowWriteOutput,
        handler=slow_write,
        risk="write",
        scope="notes:write",
        approval="never",
    ),
]
