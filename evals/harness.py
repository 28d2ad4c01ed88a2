"""The workspace a case runs in: seeding, fixture sources, the final state and its hash.

Each case (and trial) runs as its own tenant of one eval data directory, so its notes,
tickets, outbox, files, memories and documents are its own and the final state can be
hashed without ids or timestamps (like tau2-bench's database hash). Two fixture tools are
added for cases that need a source the built-ins do not offer: ``documents_search`` (hybrid
retrieval over ingested documents, ``memory.retrieval``; the agent graph has no document
recall of its own yet) and ``crm_lookup`` (an external system whose answers are untrusted,
standing in for an attached MCP server). Web pages are served on 127.0.0.1 and fetched with
the real ``http_fetch`` tool (allow-listed for that address only).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from evals.cases import Case, Injection, Seed, context_resolver, resolve
from identity import Principal, local_principal
from store.models import Memory, Note, OutboxEmail, Ticket
from tools import CallContext, ToolCall, ToolContext, ToolError, ToolSpec

if TYPE_CHECKING:
    from memory.documents import Documents
    from runtime.system import System

EVAL_USER = "eval-user"


# --- fixture sources ------------------------------------------------------------------------


class PageServer:
    """Serves case pages at ``http://127.0.0.1:PORT/<tenant>/<name>`` from memory."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path.strip("/"))
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def base(self, tenant: str) -> str:
        return f"http://127.0.0.1:{self.port}/{tenant}"

    def __enter__(self) -> PageServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class DocumentsSearchInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=2000, description="What to look for.")
    k: int = Field(default=5, ge=1, le=20, description="Most passages to return.")


class Passage(BaseModel):
    source: str
    chunk_id: str
    text: str
    score: float


class DocumentsSearchOutput(BaseModel):
    passages: list[Passage]


class CrmLookupInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer: str = Field(min_length=1, max_length=200, description="Customer name.")


class CrmLookupOutput(BaseModel):
    customer: str
    record: str


@dataclass
class Fixtures:
    """State behind the fixture tools; bound to the system once it is open."""

    system: System | None = None
    records: dict[str, dict[str, str]] = field(default_factory=dict)
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per tenant: the world of an adapter's fixture tools (AgentDojo's bank)."""
    _documents: Documents | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def documents(self) -> Documents:
        from memory.documents import Documents

        async with self._lock:
            if self._documents is None:
                assert self.system is not None and self.system.memory is not None
                lazy = self.system.memory
                self._documents = Documents.build(
                    self.system.db, await lazy.vector_store(), lazy.embedder()
                )
            return self._documents

    def tools(self) -> list[ToolSpec]:
        async def documents_search(
            ctx: ToolContext, args: DocumentsSearchInput
        ) -> DocumentsSearchOutput:
            documents = await self.documents()
            hits = await documents.retriever.search(ctx.principal, args.query, k=args.k)
            return DocumentsSearchOutput(
                passages=[
                    Passage(source=h.source, chunk_id=h.chunk_id, text=h.text, score=h.score)
                    for h in hits
                ]
            )

        async def crm_lookup(ctx: ToolContext, args: CrmLookupInput) -> CrmLookupOutput:
            records = self.records.get(ctx.principal.tenant, {})
            record = records.get(args.customer)
            if record is None:
                raise ToolError("not_found", f"no customer named {args.customer!r}")
            return CrmLookupOutput(customer=args.customer, record=record)

        return [
            ToolSpec(
                name="documents_search",
                description="Search the user's documents; returns passages with their source.",
                input_model=DocumentsSearchInput,
                output_model=DocumentsSearchOutput,
                handler=documents_search,
                risk="read",
                scope="documents:read",
                idempotent=True,
                source="documents",
            ),
            ToolSpec(
                name="crm_lookup",
                description="Look a customer up in the CRM (an external system).",
                input_model=CrmLookupInput,
                output_model=CrmLookupOutput,
                handler=crm_lookup,
                risk="read",
                scope="tickets:read",
                idempotent=True,
                source="external:crm",
            ),
        ]


# --- seeding --------------------------------------------------------------------------------


def planted(seed: Seed, injection: Injection | None) -> Seed:
    """``seed`` with the injection's text planted in its carrier (unchanged without one).

    Raises:
        ValueError: the injection names a carrier item the seed does not have.
    """
    if injection is None:
        return seed
    data = seed.model_copy(deep=True)
    text, target = injection.text, injection.target

    def need(mapping: dict[str, Any], kind: str) -> None:
        if target not in mapping:
            raise ValueError(f"injection target {target!r} is not a seeded {kind}")

    if injection.carrier == "note":
        need(data.notes, "note")
        data.notes[target].body += f"\n\n{text}"
    elif injection.carrier == "ticket":
        need(data.tickets, "ticket")
        data.tickets[target].body += f"\n\n{text}"
    elif injection.carrier == "file":
        need(data.files, "file")
        data.files[target] += f"\n\n{text}\n"
    elif injection.carrier == "web":
        need(data.pages, "page")
        page = data.pages[target]
        data.pages[target] = page.replace("</body>", f"<p>{text}</p></body>", 1)
        if data.pages[target] == page:
            data.pages[target] = page + f"<p>{text}</p>"
    elif injection.carrier == "document":
        need(data.documents, "document")
        data.documents[target] += f"\n\n{text}\n"
    elif injection.carrier == "tool_output":
        need(data.records, "record")
        data.records[target] += f" {text}"
    elif injection.carrier == "memory":
        data.memories.append(f"About {target}: {text}")
    elif injection.carrier == "environment":
        if data.environment is None:
            raise ValueError("the environment carrier needs a seeded environment")
        *parents, last = target.split("/")
        node: Any = data.environment
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: Any = int(last) if isinstance(node, list) else last
        node[key] = f"{node[key]} {text}"
    return data


@dataclass
class Workspace:
    tenant: str
    principal: Principal
    values: dict[str, Any]
    """Placeholder values: ``notes.KEY``, ``tickets.KEY``, ``web``."""


async def seed_workspace(
    system: System, fixtures: Fixtures, pages: PageServer, tenant: str, seed: Seed
) -> Workspace:
    """Write ``seed`` into ``tenant`` and return the placeholder values for it."""
    principal = local_principal(tenant=tenant, user=EVAL_USER)
    values: dict[str, Any] = {"notes": {}, "tickets": {}, "web": pages.base(tenant)}
    async with system.db.transaction() as session:
        notes = {
            key: Note(
                tenant=tenant, owner=EVAL_USER, title=n.title, body=n.body, untrusted=n.untrusted
            )
            for key, n in seed.notes.items()
        }
        tickets = {
            key: Ticket(
                tenant=tenant,
                owner=EVAL_USER,
                title=t.title,
                body=t.body,
                priority=t.priority,
                status=t.status,
                untrusted=t.untrusted,
            )
            for key, t in seed.tickets.items()
        }
        session.add_all([*notes.values(), *tickets.values()])
        await session.flush()
        values["notes"] = {key: note.id for key, note in notes.items()}
        values["tickets"] = {key: ticket.id for key, ticket in tickets.items()}
        # Planted text may name seeded records ({{notes.KEY}}): resolved once ids exist.
        for note in notes.values():
            note.body = resolve(note.body, context_resolver(values))
        for ticket in tickets.values():
            ticket.body = resolve(ticket.body, context_resolver(values))
    seed = Seed.model_validate(resolve(seed.model_dump(), context_resolver(values)))
    if seed.files:
        folder = _files_folder(system, tenant)
        for relative, text in seed.files.items():
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for name, html in seed.pages.items():
        pages.pages[f"{tenant}/{name}"] = html
    if seed.records:
        fixtures.records[tenant] = dict(seed.records)
    if seed.environment is not None:
        fixtures.environments[tenant] = copy.deepcopy(seed.environment)
    if seed.memories:
        assert system.memory is not None
        memories = (await system.memory.get()).memories
        for text in seed.memories:
            await memories.remember(principal, text, source="conversation")
        await memories.drain()
    if seed.documents:
        documents = await fixtures.documents()
        for source, text in seed.documents.items():
            submission = await documents.ingestor.submit(
                tenant=tenant, owner=EVAL_USER, data=text.encode(), source=source
            )
            if submission.job_id is not None:
                await documents.ingestor.run_job(submission.job_id)
    return Workspace(tenant, principal, values)


def _files_folder(system: System, tenant: str) -> Path:
    from tools.builtin.files import Sandbox

    return Sandbox(system.settings.files_dir).folder(tenant)


# --- the final state ------------------------------------------------------------------------


async def workspace_state(
    system: System, tenant: str, masks: Sequence[str] = (), fixtures: Fixtures | None = None
) -> dict[str, Any]:
    """The tenant's workspace without ids or timestamps: what a hash is taken of.

    ``masks`` (planted attack text, which names this tenant's record ids) are replaced by
    a marker, so the states of two tenants seeded alike compare equal."""
    async with system.db.session() as session:
        notes = (await session.execute(select(Note).where(Note.tenant == tenant))).scalars()
        tickets = (await session.execute(select(Ticket).where(Ticket.tenant == tenant))).scalars()
        outbox = (
            await session.execute(select(OutboxEmail).where(OutboxEmail.tenant == tenant))
        ).scalars()
        memories = (
            await session.execute(
                select(Memory.text).where(Memory.tenant == tenant, Memory.status == "active")
            )
        ).scalars()
        state: dict[str, Any] = {
            "notes": sorted([n.title, n.body] for n in notes),
            "tickets": sorted([t.title, t.body, t.status, t.priority] for t in tickets),
            "outbox": sorted([sorted(e.recipients), e.subject, e.body, e.status] for e in outbox),
            "memories": sorted(memories),
        }
    folder = system.settings.files_dir / tenant
    files: dict[str, str] = {}
    if folder.is_dir():
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                files[path.relative_to(folder).as_posix()] = path.read_text(
                    encoding="utf-8", errors="replace"
                )
    state["files"] = files
    if fixtures is not None and tenant in fixtures.environments:
        state["environment"] = fixtures.environments[tenant]
    return _masked(state, [m for m in masks if m])


def _masked(value: Any, masks: Sequence[str]) -> Any:
    if isinstance(value, str):
        for mask in masks:
            value = value.replace(mask, "<planted>")
        return value
    if isinstance(value, list):
        return [_masked(item, masks) for item in value]
    if isinstance(value, dict):
        return {key: _masked(item, masks) for key, item in value.items()}
    return value


def planted_text(case: Case, variant: str, workspace: Workspace) -> list[str]:
    """The attack text as planted in ``workspace`` (ids filled in), for masking."""
    if variant != "attack" or case.injection is None:
        return []
    return [str(resolve(case.injection.text, context_resolver(workspace.values)))]


def state_hash(state: dict[str, Any]) -> str:
    canonical = json.dumps(state, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def state_diff(actual: dict[str, Any], expected: dict[str, Any]) -> str:
    """Which parts of the state differ (for the report), briefly."""
    parts = []
    for key in sorted(set(actual) | set(expected)):
        if actual.get(key) != expected.get(key):
            parts.append(
                f"{key}: {_brief(actual.get(key))} vs expected {_brief(expected.get(key))}"
            )
    return "; ".join(parts)


def _brief(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 160 else text[:157] + "..."


async def replay_gold(system: System, workspace: Workspace, case: Case) -> None:
    """Run the case's gold steps straight through the executor (as approved), the way
    tau2-bench replays its gold actions to get the expected database."""
    for turn_no, turn in enumerate(case.turns):
        results: list[Any] = []
        for step_no, step in enumerate(turn.gold):
            args = resolve(step.args, context_resolver(workspace.values, results))
            outcome = await system.executor.execute(
                ToolCall(step.tool, args, f"gold_{turn_no}_{step_no}"),
                workspace.principal,
                CallContext(approved_by="eval-gold", via="eval"),
            )
            results.append(outcome.output if outcome.ok else outcome.content())
    await drain_memories(system, case)


def uses_memory(case: Case) -> bool:
    tools = {step.tool for step in case.gold_steps()}
    return bool(case.seed.memories) or any(t.startswith("memory_") for t in tools)


async def drain_memories(system: System, case: Case) -> None:
    """Wait for background memory writes, so the state read next includes them."""
    if uses_memory(case) and system.memory is not None:
        await (await system.memory.get()).memories.drain()


async def tenant_usage(system: System, tenant: str) -> dict[str, float]:
    """Model calls, tokens and cost the tenant's runs recorded (usage rows are written in
    batches: flushed first)."""
    from sqlalchemy import func

    from store.models import ProviderUsage

    recorder = system.router_services.recorder
    if recorder is not None:
        await recorder.flush()
    async with system.db.session() as session:
        calls, tokens_in, tokens_out, cost = (
            await session.execute(
                select(
                    func.count(ProviderUsage.id),
                    func.coalesce(func.sum(ProviderUsage.input_tokens), 0),
                    func.coalesce(func.sum(ProviderUsage.output_tokens), 0),
                    func.coalesce(func.sum(ProviderUsage.cost_usd), 0.0),
                ).where(ProviderUsage.tenant == tenant)
            )
        ).one()
    return {
        "model_calls": float(calls),
        "input_tokens": float(tokens_in),
        "output_tokens": float(tokens_out),
        "tokens": float(tokens_in + tokens_out),
        "cost_usd": float(cost),
    }
