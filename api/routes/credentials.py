"""Tenants' own provider keys (bring your own key): ``/admin/credentials``.

An admin (scope ``keys:manage``) stores, replaces, inspects and deletes the key their
tenant's model calls use for a provider (``openai``, ``google``, ``openai-compatible``).
The key goes in and never comes out: responses carry only its last 4 characters.

``openai-compatible`` keys are stored per server, on routes of their own so the schema
says what each accepts: ``base_url`` (in the PUT body, a query parameter for GET and
DELETE) is required there, and refused (422) for ``openai``/``google``. A compatible key
stored before base URLs existed is listed with ``status: "unscoped, unused"``; DELETE
``/openai-compatible`` without ``base_url`` removes it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from api.deps import CurrentPrincipal, ServicesDep
from api.errors import ApiError
from api.schemas import ValidText
from identity import Principal
from providers.credentials import (
    BASE_URL_PATTERN,
    MAX_BASE_URL_CHARS,
    CredentialError,
    CredentialInfo,
    CredentialStatus,
    normalise_base_url,
)
from providers.credentials import CredentialStore as _Store

router = APIRouter(prefix="/admin/credentials", tags=["credentials"])
SCOPE = "keys:manage"
COMPATIBLE = "openai-compatible"
SingleEndpointProvider = Literal["openai", "google"]
"""Providers with one endpoint (the operator's setting): their keys take no base URL."""

_API_KEY_PATTERN = r"^[ \t\r\n]*[!-~]+[ \t\r\n]*$"
_API_KEY_RE = re.compile(_API_KEY_PATTERN)


def _checked_api_key(value: str) -> str:
    if not _API_KEY_RE.fullmatch(value):
        raise ValueError(
            "the API key must be printable ASCII without spaces inside (surrounding "
            "whitespace is trimmed)"
        )
    return value


ApiKey = Annotated[
    str,
    AfterValidator(_checked_api_key),
    Field(
        min_length=1,
        max_length=4096,
        json_schema_extra={"pattern": _API_KEY_PATTERN},
        description="The provider API key (printable ASCII; surrounding whitespace trimmed).",
    ),
]
_BASE_URL_DESCRIPTION = (
    "The server's base URL, as in openai-compatible:MODEL@BASE_URL (http(s), host, port, "
    "path); the key is sent to that server only. Stored normalised: scheme and host "
    "lower-cased, default port and trailing slashes dropped."
)
_BASE_URL = re.compile(BASE_URL_PATTERN)


def _checked_base_url(value: str) -> str:
    """The schema's pattern and the store's rules, with a message a person can act on
    (pydantic's own would quote the regular expression)."""
    if not _BASE_URL.fullmatch(value):
        raise ValueError(
            "a base URL is http(s)://HOST[:PORT][/PATH] with an ASCII host and no user info, "
            "query or fragment, e.g. http://127.0.0.1:11434/v1"
        )
    try:
        normalise_base_url(value)
    except CredentialError as exc:
        raise ValueError(str(exc)) from None
    return value


_BASE_URL_SCHEMA: dict[str, Any] = {"pattern": BASE_URL_PATTERN}
BaseUrl = Annotated[
    str,
    AfterValidator(_checked_base_url),
    Field(
        max_length=MAX_BASE_URL_CHARS,
        json_schema_extra=_BASE_URL_SCHEMA,
        description=_BASE_URL_DESCRIPTION,
    ),
]


class CredentialSet(ValidText):
    """An ``openai`` or ``google`` key."""

    model_config = ConfigDict(extra="forbid")

    api_key: ApiKey

    @model_validator(mode="before")
    @classmethod
    def _no_base_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and "base_url" in data:
            raise ValueError(
                "openai and google keys take no base URL (their endpoint is the operator's "
                "setting); only openai-compatible keys are stored per base URL"
            )
        return data


class CompatibleCredentialSet(ValidText):
    """An ``openai-compatible`` key for one server."""

    model_config = ConfigDict(extra="forbid")

    api_key: ApiKey
    base_url: BaseUrl


class CredentialPublic(BaseModel):
    """What is shown of a stored key: never the key."""

    tenant: str
    provider: str
    base_url: str | None = Field(
        description="The normalised server URL of an openai-compatible key; null otherwise."
    )
    status: CredentialStatus = Field(
        description='"unscoped, unused" for an openai-compatible key stored before keys had '
        "a base URL: it is sent nowhere; store it again with its base URL."
    )
    key_hint: str
    created_by: str | None
    created_at: datetime
    updated_at: datetime


RequiredBaseUrl = Annotated[
    str,
    AfterValidator(_checked_base_url),
    Query(
        max_length=MAX_BASE_URL_CHARS,
        json_schema_extra=_BASE_URL_SCHEMA,
        description=_BASE_URL_DESCRIPTION,
    ),
]
OptionalBaseUrl = Annotated[
    str | None,
    AfterValidator(lambda value: None if value is None else _checked_base_url(value)),
    Query(
        max_length=MAX_BASE_URL_CHARS,
        json_schema_extra=_BASE_URL_SCHEMA,
        description=_BASE_URL_DESCRIPTION + " Without it: the unscoped key from before base URLs.",
    ),
]


def _public(info: CredentialInfo) -> CredentialPublic:
    return CredentialPublic(**info.__dict__, status=info.status)


def _store(principal: Principal, svc: ServicesDep) -> _Store:
    """Raises: ApiError 403 without ``keys:manage``."""
    if not principal.has_scope(SCOPE):
        raise ApiError(403, "forbidden", f"this needs the scope {SCOPE!r}, which you lack")
    store = svc.system.router_services.credentials
    assert isinstance(store, _Store), "runtime.system always builds the credential store"
    return store


def _normalised(base_url: str) -> str:
    """Raises: ApiError 422 for a base URL the store refuses."""
    try:
        return normalise_base_url(base_url)
    except CredentialError as exc:
        raise ApiError(422, exc.code, str(exc)) from None


def _refuse_base_url(request: Request, provider: str) -> None:
    """Raises: ApiError 422 when a single-endpoint provider is asked for by base URL."""
    if "base_url" in request.query_params:
        raise ApiError(
            422,
            CredentialError.code,
            f"{provider} keys take no base URL; only openai-compatible keys are stored per "
            "base URL",
        )


def _not_found(principal: Principal, what: str) -> ApiError:
    return ApiError(404, "not_found", f"tenant {principal.tenant!r} has no {what}")


async def _put(
    store: _Store, principal: Principal, provider: str, api_key: str, base_url: str | None
) -> CredentialPublic:
    try:
        info = await store.set(
            tenant=principal.tenant,
            provider=provider,
            api_key=api_key,
            base_url=base_url,
            created_by=principal.user,
        )
    except CredentialError as exc:
        raise ApiError(422, exc.code, str(exc)) from None
    return _public(info)


@router.get("", response_model=list[CredentialPublic])
async def list_credentials(principal: CurrentPrincipal, svc: ServicesDep) -> list[CredentialPublic]:
    """The tenant's stored provider keys (metadata only)."""
    store = _store(principal, svc)
    return [_public(i) for i in await store.list_credentials(tenant=principal.tenant)]


# --- openai-compatible: one key per server (declared before /{provider}) -------------


@router.get(f"/{COMPATIBLE}", response_model=CredentialPublic)
async def get_compatible_credential(
    base_url: RequiredBaseUrl, principal: CurrentPrincipal, svc: ServicesDep
) -> CredentialPublic:
    """Raises: ApiError 404 when the tenant has no key for that server."""
    store = _store(principal, svc)
    scope = _normalised(base_url)
    for info in await store.list_credentials(tenant=principal.tenant):
        if info.provider == COMPATIBLE and info.base_url == scope:
            return _public(info)
    raise _not_found(principal, f"{COMPATIBLE} key for {scope}")


@router.put(f"/{COMPATIBLE}", response_model=CredentialPublic)
async def put_compatible_credential(
    body: Annotated[CompatibleCredentialSet, Body()],
    principal: CurrentPrincipal,
    svc: ServicesDep,
) -> CredentialPublic:
    """Store or replace the tenant's key for the server at ``base_url``; the tenant's calls
    to that server (and no other) use it from now on.

    Raises: ApiError 422 for a malformed key or base URL.
    """
    store = _store(principal, svc)
    return await _put(store, principal, COMPATIBLE, body.api_key, body.base_url)


@router.delete(f"/{COMPATIBLE}", status_code=204)
async def delete_compatible_credential(
    principal: CurrentPrincipal, svc: ServicesDep, base_url: OptionalBaseUrl = None
) -> Response:
    """That server gets the deployment's key again; without ``base_url``: deletes the
    unscoped key stored before base URLs (unused).

    Raises: ApiError 404 when there was no such key.
    """
    store = _store(principal, svc)
    scope = _normalised(base_url) if base_url is not None else ""
    if not await store.delete(tenant=principal.tenant, provider=COMPATIBLE, base_url=scope):
        what = f"{COMPATIBLE} key for {scope}" if scope else f"unscoped {COMPATIBLE} key"
        raise _not_found(principal, what)
    return Response(status_code=204)


# --- openai, google: one key per provider ----------------------------------------------


@router.get("/{provider}", response_model=CredentialPublic)
async def get_credential(
    provider: SingleEndpointProvider,
    request: Request,
    principal: CurrentPrincipal,
    svc: ServicesDep,
) -> CredentialPublic:
    """Raises: ApiError 404 when the tenant has no key for ``provider``."""
    store = _store(principal, svc)
    _refuse_base_url(request, provider)
    for info in await store.list_credentials(tenant=principal.tenant):
        if info.provider == provider:
            return _public(info)
    raise _not_found(principal, f"{provider} key")


@router.put("/{provider}", response_model=CredentialPublic)
async def put_credential(
    provider: SingleEndpointProvider,
    body: Annotated[CredentialSet, Body()],
    principal: CurrentPrincipal,
    svc: ServicesDep,
) -> CredentialPublic:
    """Store or replace the tenant's key; its next model calls use it.

    Raises: ApiError 422 for a malformed key, or a base URL (these keys take none).
    """
    store = _store(principal, svc)
    return await _put(store, principal, provider, body.api_key, None)


@router.delete("/{provider}", status_code=204)
async def delete_credential(
    provider: SingleEndpointProvider,
    request: Request,
    principal: CurrentPrincipal,
    svc: ServicesDep,
) -> Response:
    """The tenant's calls use the deployment's default key again.

    Raises: ApiError 404 when there was no key.
    """
    store = _store(principal, svc)
    _refuse_base_url(request, provider)
    if not await store.delete(tenant=principal.tenant, provider=provider):
        raise _not_found(principal, f"{provider} key")
    return Response(status_code=204)
