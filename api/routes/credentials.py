"""Tenants' own provider keys (bring your own key): ``/admin/credentials``.

An admin (scope ``keys:manage``) stores, replaces, inspects and deletes the key their
tenant's model calls use for a provider (``openai``, ``google``, ``openai-compatible``).
The key goes in and never comes out: responses carry only its last 4 characters.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Response
from pydantic import BaseModel, Field

from api.deps import CurrentPrincipal, ServicesDep
from api.errors import ApiError
from identity import Principal
from providers.credentials import CredentialError, CredentialInfo, CredentialProvider
from providers.credentials import CredentialStore as _Store

router = APIRouter(prefix="/admin/credentials", tags=["credentials"])
SCOPE = "keys:manage"


class CredentialSet(BaseModel):
    api_key: str = Field(min_length=1, max_length=4096, description="The provider API key.")


class CredentialPublic(BaseModel):
    """What is shown of a stored key: never the key."""

    tenant: str
    provider: str
    key_hint: str
    created_by: str | None
    created_at: datetime
    updated_at: datetime


def _public(info: CredentialInfo) -> CredentialPublic:
    return CredentialPublic(**info.__dict__)


def _store(principal: Principal, svc: ServicesDep) -> _Store:
    """Raises: ApiError 403 without ``keys:manage``."""
    if not principal.has_scope(SCOPE):
        raise ApiError(403, "forbidden", f"this needs the scope {SCOPE!r}, which you lack")
    store = svc.system.router_services.credentials
    assert isinstance(store, _Store), "runtime.system always builds the credential store"
    return store


@router.get("", response_model=list[CredentialPublic])
async def list_credentials(principal: CurrentPrincipal, svc: ServicesDep) -> list[CredentialPublic]:
    """The tenant's stored provider keys (metadata only)."""
    store = _store(principal, svc)
    return [_public(i) for i in await store.list_credentials(tenant=principal.tenant)]


@router.get("/{provider}", response_model=CredentialPublic)
async def get_credential(
    provider: CredentialProvider, principal: CurrentPrincipal, svc: ServicesDep
) -> CredentialPublic:
    """Raises: ApiError 404 when the tenant has no key for ``provider``."""
    store = _store(principal, svc)
    for info in await store.list_credentials(tenant=principal.tenant):
        if info.provider == provider:
            return _public(info)
    raise ApiError(404, "not_found", f"tenant {principal.tenant!r} has no {provider} key")


@router.put("/{provider}", response_model=CredentialPublic)
async def put_credential(
    provider: CredentialProvider,
    body: Annotated[CredentialSet, Body()],
    principal: CurrentPrincipal,
    svc: ServicesDep,
) -> CredentialPublic:
    """Store or replace the tenant's key; its next model calls use it.

    Raises: ApiError 422 for a malformed key.
    """
    store = _store(principal, svc)
    try:
        info = await store.set(
            tenant=principal.tenant,
            provider=provider,
            api_key=body.api_key,
            created_by=principal.user,
        )
    except CredentialError as exc:
        raise ApiError(422, exc.code, str(exc)) from None
    return _public(info)


@router.delete("/{provider}", status_code=204)
async def delete_credential(
    provider: CredentialProvider, principal: CurrentPrincipal, svc: ServicesDep
) -> Response:
    """The tenant's calls use the deployment's default key again.

    Raises: ApiError 404 when there was no key.
    """
    store = _store(principal, svc)
    if not await store.delete(tenant=principal.tenant, provider=provider):
        raise ApiError(404, "not_found", f"tenant {principal.tenant!r} has no {provider} key")
    return Response(status_code=204)
