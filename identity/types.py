"""The acting principal and the roles → scopes mapping."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# Scopes name what a principal may do. Tool scopes are `<domain>:<verb>`; a
# tool's risk (read/write/destructive) is separate and drives approval.
USER_SCOPES: frozenset[str] = frozenset(
    {
        "threads:read",
        "threads:write",
        "runs:create",
        "notes:read",
        "notes:write",
        "memory:read",
        "memory:write",
        "documents:read",
        "documents:write",
        "tickets:read",
        "tickets:write",
        "files:read",
        "files:write",
        "web:fetch",
        "email:send",
    }
)
REVIEWER_SCOPES: frozenset[str] = USER_SCOPES | {"reviews:decide"}
ADMIN_SCOPES: frozenset[str] = REVIEWER_SCOPES | {
    "tenant:read",
    "audit:read",
    "keys:manage",
    "data:erase",
}

ROLE_SCOPES: dict[str, frozenset[str]] = {
    "user": USER_SCOPES,
    "reviewer": REVIEWER_SCOPES,
    "admin": ADMIN_SCOPES,
}
ALL_SCOPES: frozenset[str] = frozenset().union(*ROLE_SCOPES.values())


def scopes_for_roles(roles: Iterable[str]) -> frozenset[str]:
    """Union of the scopes granted by ``roles``.

    Raises:
        ValueError: a role is not defined in ``ROLE_SCOPES``.
    """
    granted: set[str] = set()
    for role in roles:
        if role not in ROLE_SCOPES:
            known = ", ".join(sorted(ROLE_SCOPES))
            raise ValueError(f"unknown role {role!r}; known roles: {known}")
        granted |= ROLE_SCOPES[role]
    return frozenset(granted)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a user within a tenant, with roles and scopes."""

    tenant: str
    user: str
    roles: frozenset[str] = field(default_factory=frozenset)
    scopes: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def with_roles(cls, tenant: str, user: str, roles: Iterable[str]) -> Principal:
        roles = frozenset(roles)
        return cls(tenant=tenant, user=user, roles=roles, scopes=scopes_for_roles(roles))

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "user": self.user,
            "roles": sorted(self.roles),
            "scopes": sorted(self.scopes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Principal:
        return cls(
            tenant=data["tenant"],
            user=data["user"],
            roles=frozenset(data.get("roles", ())),
            scopes=frozenset(data.get("scopes", ())),
        )


def local_principal(tenant: str = "default", user: str = "local") -> Principal:
    """The principal the CLI acts as: every role, every scope."""
    return Principal(tenant=tenant, user=user, roles=frozenset(ROLE_SCOPES), scopes=ALL_SCOPES)
