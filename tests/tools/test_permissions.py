"""The permission matrix: principal x assistant x tool x risk x trust, through the one gate.

Expected verdicts are written out as rules a reviewer can check against the issue:
no effective scope → deny; destructive or "always" → approval; write after
untrusted content → approval; otherwise allow. A sample of the matrix then runs
through the executor to show refused calls change nothing and are audited.
"""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import func, select

from identity import Principal
from store.models import AuditEntry, Note
from tools import BUILTIN_TOOLS, ToolCall, ToolPolicy, ToolRegistry

PRINCIPALS = {
    "user": Principal.with_roles("acme", "ann", ["user"]),
    "reviewer": Principal.with_roles("acme", "rita", ["reviewer"]),
    "admin": Principal.with_roles("acme", "ada", ["admin"]),
    "reader": Principal(
        "acme", "rea", frozenset({"user"}), frozenset({"notes:read", "tickets:read"})
    ),
    "nobody": Principal("acme", "nob"),
}
ASSISTANTS: dict[str, frozenset[str] | None] = {
    "unrestricted": None,
    "read_only": frozenset({"notes:read", "tickets:read"}),
    "notes_only": frozenset({"notes:read", "notes:write"}),
    "mailer": frozenset({"email:send"}),
}
# tool → (valid arguments, risk, scope, approval rule)
TOOLS = {
    "notes_search": ({"query": "x"}, "read", "notes:read", "never"),
    "tickets_search": ({"query": "x"}, "read", "tickets:read", "never"),
    "notes_create": ({"title": "t", "body": "b"}, "write", "notes:write", "when_untrusted"),
    "tickets_close": ({"ticket_id": 1}, "write", "tickets:write", "when_untrusted"),
    "email_send": (
        {"to": ["a@b.org"], "subject": "s", "body": "b"},
        "write",
        "email:send",
        "always",
    ),
    "notes_delete": ({"note_id": 1}, "destructive", "notes:write", "always"),
}
CASES = list(itertools.product(PRINCIPALS, ASSISTANTS, TOOLS, (False, True)))


def expected(principal: str, assistant: str, tool: str, tainted: bool) -> str:
    _args, risk, scope, rule = TOOLS[tool]
    allowed = ASSISTANTS[assistant]
    granted = PRINCIPALS[principal].scopes
    scopes = granted if allowed is None else granted & allowed
    if scope not in scopes:
        return "deny"
    if risk == "destructive" or rule == "always":
        return "approve"
    if tainted and risk != "read":
        return "approve"
    return "allow"


@pytest.fixture(scope="module")
def policy() -> ToolPolicy:
    return ToolPolicy(ToolRegistry(BUILTIN_TOOLS))


def test_the_matrix_covers_every_dimension() -> None:
    risks = {TOOLS[tool][1] for _p, _a, tool, _t in CASES}
    verdicts = {expected(*case) for case in CASES}

    assert risks == {"read", "write", "destructive"}
    assert verdicts == {"allow", "approve", "deny"}
    assert len(CASES) == 5 * 4 * 6 * 2


@pytest.mark.parametrize(("principal", "assistant", "tool", "tainted"), CASES)
def test_permission_matrix(
    policy: ToolPolicy, principal: str, assistant: str, tool: str, tainted: bool
) -> None:
    args, risk, scope, _rule = TOOLS[tool]
    spec = policy.registry.get(tool)
    assert spec is not None and (spec.risk, spec.scope) == (risk, scope)

    decision = policy.check(
        ToolCall(tool, args, "c1"),
        PRINCIPALS[principal],
        allowed_scopes=ASSISTANTS[assistant],
        tainted=tainted,
    )

    assert decision.verdict == expected(principal, assistant, tool, tainted)
    if decision.verdict == "deny":
        assert decision.error is not None and decision.error.code == "permission_denied"
        assert scope in decision.error.message


def test_some_well_known_cells() -> None:
    assert expected("user", "unrestricted", "notes_create", False) == "allow"
    assert expected("user", "unrestricted", "notes_create", True) == "approve"
    assert expected("user", "read_only", "notes_create", False) == "deny"
    assert expected("reader", "unrestricted", "notes_create", False) == "deny"
    assert expected("admin", "mailer", "notes_search", False) == "deny"
    assert expected("nobody", "unrestricted", "notes_search", False) == "deny"
    assert expected("user", "mailer", "email_send", False) == "approve"
    assert expected("admin", "unrestricted", "notes_delete", False) == "approve"
    assert expected("user", "unrestricted", "notes_search", True) == "allow"


@pytest.mark.parametrize(
    ("principal", "assistant", "tainted", "status"),
    [
        ("user", "unrestricted", False, "ok"),
        ("user", "unrestricted", True, "approval_required"),
        ("user", "read_only", False, "denied"),
        ("reader", "unrestricted", False, "denied"),
        ("nobody", "notes_only", False, "denied"),
    ],
)
async def test_executed_matrix_sample_changes_only_what_is_allowed(
    system, principal: str, assistant: str, tainted: bool, status: str
) -> None:  # type: ignore[no-untyped-def]
    allowed = ASSISTANTS[assistant]

    outcome = await system.executor.call_external(
        PRINCIPALS[principal],
        "notes_create",
        {"title": "t", "body": "b"},
        allowed_scopes=allowed,
        tainted=tainted,
    )

    assert outcome.status == status
    async with system.db.session() as session:
        notes = (await session.execute(select(func.count()).select_from(Note))).scalar_one()
        entry = (
            await session.scalars(select(AuditEntry).where(AuditEntry.event == "tool_call"))
        ).one()
    assert notes == (1 if status == "ok" else 0)
    assert (entry.actor, entry.tool, entry.status) == (
        PRINCIPALS[principal].user,
        "notes_create",
        status,
    )


async def test_tenant_boundaries_hold_inside_tools(system) -> None:  # type: ignore[no-untyped-def]
    acme = PRINCIPALS["admin"]
    other = Principal.with_roles("other", "ada", ["admin"])
    made = await system.executor.call_external(
        acme, "tickets_create", {"title": "acme bug", "body": ""}
    )

    seen = await system.executor.call_external(other, "tickets_search", {"query": ""})
    closed = await system.executor.call_external(
        other, "tickets_close", {"ticket_id": made.output["id"]}
    )

    assert seen.output == {"tickets": []}
    assert closed.error.code == "not_found"
