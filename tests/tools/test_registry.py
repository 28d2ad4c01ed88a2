"""tools/registry.py: registering, removing, replacing and temporarily adding tools."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from identity import Principal
from tools import ToolRegistry, ToolSpec
from tools.policy import ToolPolicy
from tools.types import ToolCall


class Empty(BaseModel):
    pass


class Out(BaseModel):
    said: str


def spec(name: str, said: str = "x") -> ToolSpec:
    async def handler(ctx: Any, args: BaseModel) -> Out:
        return Out(said=said)

    return ToolSpec(
        name=name,
        description=f"{name} says {said}",
        input_model=Empty,
        output_model=Out,
        handler=handler,
        risk="read",
        scope="notes:read",
        transactional=False,
    )


def test_register_refuses_a_taken_name() -> None:
    registry = ToolRegistry([spec("a")])
    with pytest.raises(ValueError, match="already registered"):
        registry.register(spec("a"))
    assert len(registry) == 1 and "a" in registry and "b" not in registry


def test_unregister_removes_and_returns_the_tool() -> None:
    a, b = spec("a"), spec("b")
    registry = ToolRegistry([a, b])
    assert registry.unregister("a") is a
    assert registry.names() == ["b"] and registry.get("a") is None
    with pytest.raises(KeyError, match="no tool 'a'"):
        registry.unregister("a")
    registry.register(spec("a"))  # the name is free again
    assert registry.names() == ["a", "b"]


def test_replace_swaps_the_entry_and_returns_the_previous_one() -> None:
    old, new = spec("a", "old"), spec("a", "new")
    registry = ToolRegistry([old])
    assert registry.replace(new) is old
    assert registry.get("a") is new and len(registry) == 1
    assert registry.replace(spec("b")) is None
    assert registry.names() == ["a", "b"]


def test_registered_adds_for_the_block_and_removes_exactly_those() -> None:
    base = spec("base")
    registry = ToolRegistry([base])
    extra = [spec("x"), spec("y")]
    with registry.registered(extra) as added:
        assert added == extra
        assert registry.names() == ["base", "x", "y"]
        assert registry.get("x") is extra[0]
    assert registry.names() == ["base"] and registry.get("base") is base


def test_registered_removes_its_tools_when_the_block_raises() -> None:
    registry = ToolRegistry()
    with pytest.raises(RuntimeError), registry.registered([spec("x")]):
        raise RuntimeError("boom")
    assert len(registry) == 0


def test_registered_refuses_clashes_and_adds_nothing() -> None:
    registry = ToolRegistry([spec("a")])
    with pytest.raises(ValueError, match=r"\['a'\]"), registry.registered([spec("n"), spec("a")]):
        pass
    with pytest.raises(ValueError, match=r"\['d'\]"), registry.registered([spec("d"), spec("d")]):
        pass
    assert registry.names() == ["a"]


def test_registered_leaves_an_entry_replaced_meanwhile() -> None:
    registry = ToolRegistry()
    mine, theirs = spec("x", "mine"), spec("x", "theirs")
    with registry.registered([mine]):
        registry.replace(theirs)
    assert registry.get("x") is theirs  # not removed: it is no longer the one we added


def test_the_gate_sees_removals_at_once() -> None:
    registry = ToolRegistry([spec("a")])
    policy = ToolPolicy(registry)
    principal = Principal.with_roles("t", "u", ["user"])
    assert policy.check(ToolCall("a", {}, "1"), principal).verdict == "allow"
    registry.unregister("a")
    refused = policy.check(ToolCall("a", {}, "2"), principal)
    assert refused.verdict == "deny" and refused.error is not None
    assert [tool.name for tool in policy.visible_tools(principal)] == []
