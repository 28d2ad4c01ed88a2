"""identity/types.py: roles → scopes and the principal's serialised form."""

from __future__ import annotations

import pytest

from identity.types import (
    ADMIN_SCOPES,
    ALL_SCOPES,
    REVIEWER_SCOPES,
    ROLE_SCOPES,
    USER_SCOPES,
    Principal,
    local_principal,
    scopes_for_roles,
)


def test_each_role_strictly_extends_the_one_below() -> None:
    assert USER_SCOPES < REVIEWER_SCOPES < ADMIN_SCOPES
    assert "reviews:decide" in REVIEWER_SCOPES - USER_SCOPES
    assert {"audit:read", "data:erase"} <= ADMIN_SCOPES - REVIEWER_SCOPES


@pytest.mark.parametrize("role", sorted(ROLE_SCOPES))
def test_scopes_for_one_role(role: str) -> None:
    assert scopes_for_roles([role]) == ROLE_SCOPES[role]


def test_scopes_for_several_roles_is_the_union() -> None:
    assert scopes_for_roles(["user", "reviewer"]) == REVIEWER_SCOPES
    assert scopes_for_roles([]) == frozenset()


def test_unknown_role_names_it_and_the_known_roles() -> None:
    with pytest.raises(ValueError, match="'superuser'") as raised:
        scopes_for_roles(["user", "superuser"])
    assert "admin, reviewer, user" in str(raised.value)

    with pytest.raises(ValueError, match="superuser"):
        Principal.with_roles("acme", "ann", ["superuser"])


def test_with_roles_grants_the_roles_scopes() -> None:
    principal = Principal.with_roles("acme", "ann", ["reviewer"])

    assert principal.roles == frozenset({"reviewer"})
    assert principal.has_scope("reviews:decide")
    assert principal.has_scope("notes:write")
    assert not principal.has_scope("audit:read")


def test_local_principal_has_every_role_and_scope() -> None:
    principal = local_principal()

    assert principal.roles == frozenset(ROLE_SCOPES)
    assert principal.scopes == ALL_SCOPES == ADMIN_SCOPES
    assert (principal.tenant, principal.user) == ("default", "local")
    assert all(principal.has_scope(scope) for scope in ALL_SCOPES)


def test_to_dict_from_dict_round_trip() -> None:
    principal = Principal.with_roles("acme", "ann", ["user", "reviewer"])

    data = principal.to_dict()

    assert data == {
        "tenant": "acme",
        "user": "ann",
        "roles": ["reviewer", "user"],
        "scopes": sorted(REVIEWER_SCOPES),
    }
    assert Principal.from_dict(data) == principal


def test_from_dict_defaults_to_no_roles_or_scopes() -> None:
    principal = Principal.from_dict({"tenant": "acme", "user": "ann"})

    assert principal.roles == frozenset()
    assert principal.scopes == frozenset()
    assert not principal.has_scope("notes:read")
