"""One real API server per test module, with a thread interrupted at a destructive call.

Tenant ``a``: alice (user) owns the thread; rita reviews; ada administers. Tenant ``b``:
bob (user) and rex (reviewer) must see nothing of tenant ``a``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from runtime.settings import Settings
from tests.api.conftest import _Running
from tests.helpers import call, write_script

XSS = '<img src=x onerror="window.__xss=1">'
JWT_SECRET = "console-test-jwt-secret-that-is-long-enough-0123"
KEYS = {
    "alice": ("a", "alice", ["user"]),
    "rita": ("a", "rita", ["reviewer"]),
    "ada": ("a", "ada", ["admin"]),
    "bob": ("b", "bob", ["user"]),
    "rex": ("b", "rex", ["reviewer"]),
}
# The model writes a note, then proposes deleting the wrong one (a destructive call:
# always needs approval), then reports. Turns are picked by the number of AI messages.
SCRIPT = [
    {"content": "", "tool_calls": [call("notes_create", title=f"Draft {XSS}", body="old text")]},
    {
        "content": f"I will delete the draft {XSS}",
        "tool_calls": [call("notes_delete", note_id=2)],
    },
    {"content": "Done: the draft note is gone."},
]


@dataclass
class ConsoleServer:
    origin: str
    keys: dict[str, str]
    thread_id: str
    data_dir: Path
    approval_id: str = ""

    @property
    def api(self) -> str:
        return f"{self.origin}/api/v1"

    def headers(self, who: str) -> dict[str, str]:
        return {"x-api-key": self.keys[who]}


async def _create_keys(settings: Settings) -> dict[str, str]:
    from identity.apikeys import create_api_key
    from store import Database, migrate

    migrate(settings.store_url)
    db = Database(settings.store_url)
    try:
        keys = {}
        for name, (tenant, user, roles) in KEYS.items():
            keys[name] = (await create_api_key(db=db, tenant=tenant, user=user, roles=roles)).key
        return keys
    finally:
        await db.dispose()


async def _mcp_approval(settings: Settings) -> str:
    """A pending approval as an MCP client's call leaves it (alice asked to send mail)."""
    from identity import Principal
    from store import Database
    from tools import BUILTIN_TOOLS, ApprovalService, AuditLog, args_hash

    spec = next(tool for tool in BUILTIN_TOOLS if tool.name == "email_send")
    args = {"to": ["team@example.org"], "subject": f"Weekly report {XSS}", "body": "All green."}
    db = Database(settings.store_url)
    try:
        approval = await ApprovalService(db, AuditLog(db)).request(
            principal=Principal.with_roles("a", "alice", ["user"]),
            tool=spec,
            args=args,
            args_hash=args_hash(spec.name, args),
            reason="email_send always needs approval",
            preview={"would": "send 1 e-mail to team@example.org"},
            via="mcp",
        )
        return approval.approval_id
    finally:
        await db.dispose()


def console_jwt(user: str, tenant: str, roles: list[str], *, expires_in: float = 600) -> str:
    """A bearer JWT the console server accepts (HS256 with its secret)."""
    import jwt

    claims = {"sub": user, "tenant": tenant, "roles": roles, "exp": int(time.time() + expires_in)}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def interrupted_thread(server: ConsoleServer, who: str, text: str) -> str:
    """Start a thread as ``who`` and wait until its run paused for a decision."""
    with httpx.Client(base_url=server.api, headers=server.headers(who), timeout=60) as client:
        thread = client.post("/threads", json={"metadata": {"purpose": "console test"}})
        thread.raise_for_status()
        thread_id = thread.json()["thread_id"]
        waited = client.post(
            f"/threads/{thread_id}/runs/wait",
            json={
                "assistant_id": "agent",
                "input": {"messages": [{"role": "user", "content": text}]},
            },
        )
        waited.raise_for_status()
        state = client.get(f"/threads/{thread_id}").json()
        assert state["status"] == "interrupted", json.dumps(state)[:500]
        return thread_id


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    root = tmp_path_factory.mktemp("console")
    model = write_script(root / "script.json", SCRIPT)
    settings = Settings(data_dir=root / "data", model=model, jwt_secret=JWT_SECRET)
    with ThreadPoolExecutor(1) as pool:
        keys = pool.submit(asyncio.run, _create_keys(settings)).result()
    running = _Running(settings, workers=2)
    running.start()
    try:
        server = ConsoleServer(f"http://127.0.0.1:{running.port}", keys, "", root / "data")
        server.thread_id = interrupted_thread(server, "alice", f"Tidy my notes {XSS}")
        with ThreadPoolExecutor(1) as pool:
            server.approval_id = pool.submit(asyncio.run, _mcp_approval(settings)).result()
        yield server
    finally:
        running.stop()
