"""Permissioned tools: registry, the policy gate, the executor, the ledger, approvals, audit."""

from tools.approvals import Approval, ApprovalError, ApprovalPolicy, ApprovalService
from tools.audit import AuditLog, AuditRecord, VerifyReport
from tools.builtin import BUILTIN_TOOLS, BuiltinConfig, builtin_tools
from tools.executor import CallContext, ToolExecutor
from tools.policy import PolicyDecision, ToolPolicy, effective_scopes
from tools.registry import ToolRegistry
from tools.trust import TrustConfig
from tools.types import (
    APPROVAL_ARG,
    ApprovalTicket,
    CallKey,
    ToolCall,
    ToolContext,
    ToolError,
    ToolOutcome,
    ToolSpec,
    args_hash,
)

__all__ = [
    "APPROVAL_ARG",
    "BUILTIN_TOOLS",
    "Approval",
    "ApprovalError",
    "ApprovalPolicy",
    "ApprovalService",
    "ApprovalTicket",
    "AuditLog",
    "AuditRecord",
    "BuiltinConfig",
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
    "TrustConfig",
    "VerifyReport",
    "args_hash",
    "builtin_tools",
    "effective_scopes",
]
