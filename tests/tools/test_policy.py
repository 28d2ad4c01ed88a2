"""tools/policy.py: the gate every call passes (tool, scope, arguments, approval)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from identity import Principal, local_principal
from tools import BUILTIN_TOOLS, ToolCall, ToolContext, ToolPolicy, ToolRegistry, ToolSpec
from tools.builtin.notes import NotesCreateInput
from tools.external import input_model_for
from tools.schemas import nulls_as_absent, openai_strict_schema


class TransferInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: int = Field(ge=0)


class TransferOutput(BaseModel):
    ok: bool


async def _transfer(ctx: ToolContext, args: TransferInput) -> TransferOutput:
    return TransferOutput(ok=True)


def _large(args: BaseModel) -> bool:
    assert isinstance(args, TransferInput)
    return args.amount > 100


TRANSFER = ToolSpec(
    name="transfer",
    description="Move an amount.",
    input_model=TransferInput,
    output_model=TransferOutput,
    handler=_transfer,
    risk="write",
    scope="notes:write",
    approval=_large,
)


@pytest.fixture
def policy() -> ToolPolicy:
    return ToolPolicy(ToolRegistry([*BUILTIN_TOOLS, TRANSFER]))


ADMIN = local_principal()


def test_allowed_call_carries_the_parsed_arguments(policy: ToolPolicy) -> None:
    decision = policy.check(ToolCall("notes_create", {"title": "t", "body": "b"}, "c1"), ADMIN)

    assert decision.verdict == "allow" and decision.allowed
    assert decision.tool is not None and decision.tool.name == "notes_create"
    assert decision.args == NotesCreateInput(title="t", body="b")
    assert decision.error is None


def test_unknown_tool_is_denied_listing_the_tools(policy: ToolPolicy) -> None:
    decision = policy.check(ToolCall("notes_burn", {}, "c1"), ADMIN)

    assert decision.verdict == "deny" and not decision.allowed
    assert decision.error is not None and decision.error.code == "unknown_tool"
    assert "'notes_burn'" in decision.error.message
    assert "notes_create" in decision.error.message
    assert decision.tool is None


def test_principal_without_the_scope_is_denied(policy: ToolPolicy) -> None:
    reader = Principal("acme", "ann", scopes=frozenset({"notes:read"}))

    denied = policy.check(ToolCall("notes_create", {"title": "t", "body": "b"}, "c1"), reader)
    allowed = policy.check(ToolCall("notes_search", {"query": "x"}, "c2"), reader)

    assert denied.verdict == "deny"
    assert denied.error is not None and denied.error.code == "permission_denied"
    assert "'notes:write'" in denied.error.message and "'ann'" in denied.error.message
    assert allowed.verdict == "allow"


def test_assistant_allowed_scopes_narrow_the_principal(policy: ToolPolicy) -> None:
    create = ToolCall("notes_create", {"title": "t", "body": "b"}, "c1")
    search = ToolCall("notes_search", {"query": "x"}, "c2")

    denied = policy.check(create, ADMIN, allowed_scopes={"notes:read"})
    allowed = policy.check(search, ADMIN, allowed_scopes={"notes:read"})

    assert denied.error is not None and denied.error.code == "permission_denied"
    assert allowed.verdict == "allow"


def test_allowed_scopes_never_widen_the_principal(policy: ToolPolicy) -> None:
    reader = Principal("acme", "ann", scopes=frozenset({"notes:read"}))

    decision = policy.check(
        ToolCall("notes_create", {"title": "t", "body": "b"}, "c1"),
        reader,
        allowed_scopes={"notes:read", "notes:write"},
    )

    assert decision.error is not None and decision.error.code == "permission_denied"


@pytest.mark.parametrize(
    ("name", "args", "field"),
    [
        ("notes_create", {"title": "", "body": "b"}, "title"),
        ("notes_create", {"title": "t"}, "body"),
        ("notes_create", {"title": "t", "body": "b", "colour": "red"}, "colour"),
        ("notes_search", {"query": "x", "limit": 0}, "limit"),
        ("notes_delete", {"note_id": "seven"}, "note_id"),
    ],
)
def test_invalid_arguments_name_the_field(
    policy: ToolPolicy, name: str, args: dict[str, object], field: str
) -> None:
    decision = policy.check(ToolCall(name, args, "c1"), ADMIN)

    assert decision.verdict == "deny"
    assert decision.error is not None and decision.error.code == "invalid_arguments"
    assert f"{field}:" in decision.error.message
    assert f"'{name}'" in decision.error.message


def test_scope_is_checked_before_arguments(policy: ToolPolicy) -> None:
    nobody = Principal("acme", "ann")

    decision = policy.check(ToolCall("notes_create", {"title": ""}, "c1"), nobody)

    assert decision.error is not None and decision.error.code == "permission_denied"


@pytest.mark.parametrize("tainted", [False, True])
def test_always_rule_needs_approval(policy: ToolPolicy, tainted: bool) -> None:
    decision = policy.check(ToolCall("notes_delete", {"note_id": 1}, "c1"), ADMIN, tainted=tainted)

    assert decision.verdict == "approve" and not decision.allowed
    assert "always needs approval" in decision.reason
    assert decision.args is not None and decision.error is None


def test_when_untrusted_rule_follows_the_taint(policy: ToolPolicy) -> None:
    call = ToolCall("notes_create", {"title": "t", "body": "b"}, "c1")

    clean = policy.check(call, ADMIN, tainted=False)
    tainted = policy.check(call, ADMIN, tainted=True)

    assert clean.verdict == "allow"
    assert tainted.verdict == "approve"
    assert "untrusted" in tainted.reason


def test_read_tool_never_needs_approval_even_when_tainted(policy: ToolPolicy) -> None:
    decision = policy.check(ToolCall("notes_search", {"query": "x"}, "c1"), ADMIN, tainted=True)

    assert decision.verdict == "allow"


@pytest.mark.parametrize(("amount", "verdict"), [(100, "allow"), (101, "approve")])
def test_predicate_rule_sees_the_parsed_arguments(
    policy: ToolPolicy, amount: int, verdict: str
) -> None:
    decision = policy.check(ToolCall("transfer", {"amount": amount}, "c1"), ADMIN)

    assert decision.verdict == verdict
    if verdict == "approve":
        assert "approval rule of transfer matched" in decision.reason


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: int = 0
    label: str | None = "x"


class NestedInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    window: Window | None = None
    windows: list[Window] = []


@pytest.mark.parametrize("tool", BUILTIN_TOOLS, ids=lambda tool: tool.name)
def test_strict_models_left_out_optional_arguments_are_read_as_absent(tool: ToolSpec) -> None:
    """OpenAI strict mode makes every property required and the optional ones nullable
    (``openai_strict_schema``), so a real model sends ``null`` for "left out": the gate
    must read it so (only where the tool itself does not accept null)."""
    strict = openai_strict_schema(tool.input_model)
    fields = tool.input_model.model_fields
    optional = [name for name, field in fields.items() if not field.is_required()]
    assert set(strict["required"]) == set(fields)
    cleaned = nulls_as_absent(tool.input_model, {name: None for name in optional})
    for name in optional:
        try:
            TypeAdapter(fields[name].annotation).validate_python(None)
            accepts_null = True
        except ValidationError:
            accepts_null = False
        assert (name in cleaned) == accepts_null, name


def test_a_strict_null_means_left_out_but_a_nullable_argument_keeps_it(
    policy: ToolPolicy,
) -> None:
    decision = policy.check(ToolCall("notes_search", {"query": "q", "limit": None}, "c"), ADMIN)
    assert decision.allowed, decision.error
    assert decision.args is not None and decision.args.model_dump()["limit"] == 10

    assert nulls_as_absent(
        NestedInput,
        {"window": {"start": None, "label": None}, "windows": [{"start": None}, {"start": 2}]},
    ) == {"window": {"label": None}, "windows": [{}, {"start": 2}]}
    assert NestedInput.model_validate(nulls_as_absent(NestedInput, {"window": None})).window is None


def test_an_external_schema_with_a_null_type_list_keeps_its_null() -> None:
    model = input_model_for(
        "ext",
        {
            "type": "object",
            "properties": {
                "q": {"type": "string"},
                "n": {"type": ["integer", "null"]},
                "k": {"type": "integer"},
            },
            "required": ["q"],
        },
    )
    assert nulls_as_absent(model, {"q": "a", "n": None, "k": None}) == {"q": "a", "n": None}
    model.model_validate(nulls_as_absent(model, {"q": "a", "n": None, "k": None}))
