"""Who is acting: principals, roles and scopes."""

from identity.types import ALL_SCOPES, ROLE_SCOPES, Principal, local_principal, scopes_for_roles

__all__ = ["ALL_SCOPES", "ROLE_SCOPES", "Principal", "local_principal", "scopes_for_roles"]
