"""The one gate every tool call passes: arguments, scopes, and the approval decision."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from identity import Principal
from tools.registry import ToolRegistry
from tools.schemas import nulls_as_absent
from tools.types import ToolCall, ToolError, ToolSpec

Verdict = Literal["allow", "approve", "deny"]


@dataclass(frozen=True)
class PolicyDecision:
    """``allow``: run it; ``approve``: a human must approve first; ``deny``: refused."""

    verdict: Verdict
    tool: ToolSpec | None = None
    args: BaseModel | None = None
    reason: str = ""
    error: ToolError | None = None

    @property
    def allowed(self) -> bool:
        return self.verdict == "allow"


def effective_scopes(principal: Principal, allowed_scopes: Iterable[str] | None) -> frozenset[str]:
    """The principal's scopes, narrowed to what the assistant allows (None: no narrowing)."""
    if allowed_scopes is None:
        return principal.scopes
    return principal.scopes & frozenset(allowed_scopes)


def format_validation_error(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


class ToolPolicy:
    """Decides, for one proposed call, whether it may run now, needs approval, or is refused."""

    def __init__(self, registry: ToolRegistry) -> None:
        self.registry = registry

    def visible_tools(
        self, principal: Principal, *, allowed_scopes: Iterable[str] | None = None
    ) -> list[ToolSpec]:
        """The tools ``principal`` may call here (others are not even listed)."""
        scopes = effective_scopes(principal, allowed_scopes)
        return [tool for tool in self.registry if tool.scope in scopes]

    def check(
        self,
        call: ToolCall,
        principal: Principal,
        *,
        allowed_scopes: Iterable[str] | None = None,
        tainted: bool = False,
    ) -> PolicyDecision:
        tool = self.registry.get(call.name)
        if tool is None:
            known = ", ".join(self.registry.names()) or "none"
            return _deny(
                ToolError("unknown_tool", f"there is no tool named {call.name!r}; tools: {known}")
            )
        scopes = effective_scopes(principal, allowed_scopes)
        if tool.scope not in scopes:
            return _deny(
                ToolError(
                    "permission_denied",
                    f"tool {tool.name!r} needs scope {tool.scope!r}, which "
                    f"{principal.user!r} does not have here",
                ),
                tool,
            )
        try:
            args = validated_args(tool, call.args)
        except ToolError as error:
            return _deny(error, tool)
        reason = approval_reason(tool, args, tainted=tainted)
        if reason:
            return PolicyDecision("approve", tool, args, reason)
        return PolicyDecision("allow", tool, args)


def validated_args(tool: ToolSpec, args: Mapping[str, Any]) -> BaseModel:
    """``args`` as ``tool`` takes them (a strict model's null for an optional argument
    means absent).

    Raises:
        ToolError: ``invalid_arguments``, saying which fields are wrong.
    """
    try:
        return tool.input_model.model_validate(nulls_as_absent(tool.input_model, dict(args)))
    except ValidationError as exc:
        raise ToolError(
            "invalid_arguments",
            f"arguments for {tool.name!r} are invalid: {format_validation_error(exc)}",
        ) from None


def approval_reason(tool: ToolSpec, args: BaseModel, *, tainted: bool) -> str:
    """Why ``tool`` needs a human's approval for ``args``, or "" when it does not.

    After the run read untrusted content, every write or destructive call needs
    approval whatever its own rule, unless the tool is declared ``taint_exempt``:
    a model that obeys instructions hidden in that content must not act unseen.
    """
    rule: Any = tool.approval
    if rule == "always":
        return f"{tool.name} is a {tool.risk} tool that always needs approval"
    if tainted and (rule == "when_untrusted" or (tool.side_effecting and not tool.taint_exempt)):
        return f"the run has read untrusted content and {tool.name} is a {tool.risk} tool"
    if callable(rule) and rule(args):
        return f"the approval rule of {tool.name} matched these arguments"
    return ""


def _deny(error: ToolError, tool: ToolSpec | None = None) -> PolicyDecision:
    return PolicyDecision("deny", tool, None, error.message, error)
