"""Permissioned tools: registry, the policy gate, the executor and the ledger."""

from tools.builtin import BUILTIN_TOOLS
from tools.executor import CallContext, ToolExecutor
from tools.policy import PolicyDecision, ToolPolicy, effective_scopes
from tools.registry import ToolRegistry
from tools.types import CallKey, ToolCall, ToolContext, ToolError, ToolOutcome, ToolSpec

__all__ = [
    "BUILTIN_TOOLS",
    "CallContext",
    "CallKey",
    "PolicyDecision",
    "ToolCall",
    "ToolContext",
    "ToolError",
    "ToolExecutor",
    "ToolOutcome",
    "ToolPolicy",
    "ToolRegistry",
    "ToolSpec",
    "effective_scopes",
]
