"""The LangGraph store: JSON items under namespace paths, owned by a tenant, with TTLs.

A namespace is a sequence of labels, kept as one text path joined with "." (LangGraph
forbids "." in a label). An item past its ``expires_at`` is absent from every read; a
read with ``refresh_ttl`` (LangGraph's default) pushes the expiry back by the item's TTL.
Semantic search (``query``) needs the memory feature and is refused until it lands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from itertools import takewhile
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from store import Database
from store.models import StoreItem, utcnow

SEPARATOR = "."
RESERVED_ROOT = "langgraph"
WILDCARD = "*"
MAX_TTL_MINUTES = 100 * 365 * 24 * 60
_ABSENT = object()


class StoreItemError(ValueError):
    """A store request breaks a rule; the message names the rule (HTTP 422)."""


class SemanticSearchUnavailable(StoreItemError):
    """A search asked for semantic matching, which needs the memory feature."""


class StoreItemNotFound(LookupError):
    """The tenant has no live item under that namespace and key (HTTP 404)."""


def validate_namespace(
    namespace: Sequence[str], *, what: str = "namespace", allow_empty: bool = False
) -> tuple[str, ...]:
    """The labels of ``namespace`` once checked against LangGraph's rules.

    Raises:
        StoreItemError: the namespace is empty (unless allowed), or a label is empty,
            not a string or contains ".".
    """
    labels = tuple(namespace)
    if not labels and not allow_empty:
        raise StoreItemError(f"{what} cannot be empty; give at least one label, e.g. ['users']")
    for label in labels:
        if not isinstance(label, str) or not label:
            raise StoreItemError(
                f"{what} {list(labels)!r} has an empty or non-string label; "
                "labels are non-empty strings"
            )
        if SEPARATOR in label:
            raise StoreItemError(
                f"{what} label {label!r} contains '.', which store namespaces forbid; "
                "split it into separate labels"
            )
    return labels


async def put_item(
    *,
    db: Database,
    tenant: str,
    namespace: Sequence[str],
    key: str,
    value: Mapping[str, Any],
    ttl_minutes: float | None = None,
) -> None:
    """Create or replace the tenant's item; ``ttl_minutes`` None keeps it forever.

    Raises:
        StoreItemError: invalid namespace or key, the reserved root label, a TTL that is
            not a positive number of minutes.
    """
    labels = validate_namespace(namespace)
    if labels[0] == RESERVED_ROOT:
        raise StoreItemError(f"the root label {RESERVED_ROOT!r} is reserved; choose another")
    _check_key(key)
    if ttl_minutes is not None and not 0 < ttl_minutes <= MAX_TTL_MINUTES:
        raise StoreItemError(
            f"ttl is in minutes and must be above 0 and at most {MAX_TTL_MINUTES} "
            f"(got {ttl_minutes}); omit it for an item that never expires"
        )
    path = SEPARATOR.join(labels)
    for attempt in range(2):
        now = utcnow()
        try:
            async with db.transaction() as session:
                row = await session.get(StoreItem, (tenant, path, key))
                if row is None:
                    row = StoreItem(tenant=tenant, namespace=path, key=key, created_at=now)
                    session.add(row)
                elif not _is_live(row, now):
                    row.created_at = now  # an expired item is replaced, not updated
                row.value = dict(value)
                row.ttl_minutes = ttl_minutes
                row.expires_at = _expiry(now, ttl_minutes)
                row.updated_at = now
            return
        except IntegrityError:
            # A concurrent put created the item first; the second attempt updates it.
            if attempt:
                raise


async def get_item(
    *,
    db: Database,
    tenant: str,
    namespace: Sequence[str],
    key: str,
    refresh_ttl: bool = True,
) -> dict[str, Any]:
    """The tenant's live item.

    Raises:
        StoreItemError: invalid namespace or key.
        StoreItemNotFound: no such item, it expired, or another tenant owns it.
    """
    labels = validate_namespace(namespace)
    _check_key(key)
    now = utcnow()
    async with db.session() as session:
        row = await session.get(StoreItem, (tenant, SEPARATOR.join(labels), key))
    if row is None or not _is_live(row, now):
        raise StoreItemNotFound(f"there is no item {key!r} in namespace {list(labels)!r}")
    if refresh_ttl:
        await _refresh(db, [row], now)
    return _public(row)


async def delete_item(*, db: Database, tenant: str, namespace: Sequence[str], key: str) -> None:
    """Delete the tenant's item; deleting a missing item does nothing.

    Raises:
        StoreItemError: invalid namespace or key.
    """
    labels = validate_namespace(namespace)
    _check_key(key)
    async with db.transaction() as session:
        await session.execute(
            delete(StoreItem).where(
                StoreItem.tenant == tenant,
                StoreItem.namespace == SEPARATOR.join(labels),
                StoreItem.key == key,
            )
        )


async def search_items(
    *,
    db: Database,
    tenant: str,
    namespace_prefix: Sequence[str] = (),
    filter: Mapping[str, Any] | None = None,
    limit: int = 10,
    offset: int = 0,
    query: str | None = None,
    refresh_ttl: bool = True,
) -> list[dict[str, Any]]:
    """The tenant's live items under ``namespace_prefix``, most recently updated first.

    ``filter`` matches top-level value keys exactly. Each item has ``score`` None.

    Raises:
        SemanticSearchUnavailable: ``query`` was given.
        StoreItemError: invalid prefix, a filter operator, a negative limit or offset.
    """
    if query:
        raise SemanticSearchUnavailable(
            "semantic store search (query) needs the memory feature, which this server "
            "does not have yet; omit query and search with namespace_prefix and filter"
        )
    prefix = validate_namespace(namespace_prefix, what="namespace_prefix", allow_empty=True)
    wanted = dict(filter or {})
    _check_filter(wanted)
    _check_page(limit, offset)
    now = utcnow()
    statement = (
        select(StoreItem)
        .where(StoreItem.tenant == tenant, _live(now), _under(prefix))
        .order_by(StoreItem.updated_at.desc(), StoreItem.namespace, StoreItem.key)
    )
    async with db.session() as session:
        if wanted:
            rows = await _first_matching(session, statement, wanted, limit, offset)
        else:
            rows = list((await session.scalars(statement.offset(offset).limit(limit))).all())
    if refresh_ttl:
        await _refresh(db, rows, now)
    return [{**_public(row), "score": None} for row in rows]


async def list_namespaces(
    *,
    db: Database,
    tenant: str,
    prefix: Sequence[str] | None = None,
    suffix: Sequence[str] | None = None,
    max_depth: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[list[str]]:
    """The distinct namespaces of the tenant's live items, sorted.

    A "*" label in ``prefix`` or ``suffix`` matches any label; ``max_depth`` truncates
    each namespace to that many labels before duplicates are merged.

    Raises:
        StoreItemError: invalid prefix or suffix, max_depth below 1, a negative limit or
            offset.
    """
    head = validate_namespace(prefix or (), what="prefix", allow_empty=True)
    tail = validate_namespace(suffix or (), what="suffix", allow_empty=True)
    if max_depth is not None and max_depth < 1:
        raise StoreItemError(f"max_depth must be at least 1 (got {max_depth})")
    _check_page(limit, offset)
    literal_head = tuple(takewhile(lambda label: label != WILDCARD, head))
    statement = (
        select(StoreItem.namespace)
        .distinct()
        .where(StoreItem.tenant == tenant, _live(utcnow()), _under(literal_head))
    )
    async with db.session() as session:
        paths = (await session.scalars(statement)).all()
    found: set[tuple[str, ...]] = set()
    for path in paths:
        labels = tuple(path.split(SEPARATOR))
        if _starts_with(labels, head) and _starts_with(labels[::-1], tail[::-1]):
            found.add(labels[:max_depth] if max_depth else labels)
    return [list(labels) for labels in sorted(found)[offset : offset + limit]]


def _public(row: StoreItem) -> dict[str, Any]:
    return {
        "namespace": row.namespace.split(SEPARATOR),
        "key": row.key,
        "value": row.value,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise StoreItemError("key must be a non-empty string")


def _check_page(limit: int, offset: int) -> None:
    if limit < 1 or offset < 0:
        raise StoreItemError(f"limit must be at least 1 and offset at least 0 ({limit}, {offset})")


def _check_filter(wanted: Mapping[str, Any]) -> None:
    for name, expected in wanted.items():
        if isinstance(expected, dict) and any(str(op).startswith("$") for op in expected):
            raise StoreItemError(
                f"filter on {name!r} uses an operator ({', '.join(map(str, expected))}); "
                "only exact matches on top-level value keys are supported"
            )


def _expiry(now: datetime, ttl_minutes: float | None) -> datetime | None:
    return None if ttl_minutes is None else now + timedelta(minutes=ttl_minutes)


def _is_live(row: StoreItem, now: datetime) -> bool:
    return row.expires_at is None or row.expires_at > now


def _live(now: datetime) -> ColumnElement[bool]:
    return or_(StoreItem.expires_at.is_(None), StoreItem.expires_at > now)


def _under(prefix: tuple[str, ...]) -> ColumnElement[bool]:
    if not prefix:
        return true()
    path = SEPARATOR.join(prefix)
    # substr, not LIKE: SQLite's LIKE ignores case and would need "%" and "_" escaped.
    below = func.substr(StoreItem.namespace, 1, len(path) + 1) == path + SEPARATOR
    return or_(StoreItem.namespace == path, below)


def _starts_with(labels: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    return len(labels) >= len(pattern) and all(
        want in (WILDCARD, label) for want, label in zip(pattern, labels, strict=False)
    )


def _same(actual: Any, expected: Any) -> bool:
    """JSON equality: true is not 1, and objects and arrays compare member by member."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and actual.keys() == expected.keys()
            and all(_same(actual[name], expected[name]) for name in expected)
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(_same(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return not isinstance(actual, dict | list) and actual == expected


def _matches(value: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    return all(
        (actual := value.get(name, _ABSENT)) is not _ABSENT and _same(actual, expected)
        for name, expected in wanted.items()
    )


async def _first_matching(
    session: AsyncSession,
    statement: Select[StoreItem],
    wanted: Mapping[str, Any],
    limit: int,
    offset: int,
) -> list[StoreItem]:
    # The filter runs here rather than in SQL, which cannot compare JSON portably.
    rows: list[StoreItem] = []
    skipped = 0
    result = await session.stream_scalars(statement)
    try:
        async for row in result:
            if not _matches(row.value or {}, wanted):
                continue
            if skipped < offset:
                skipped += 1
                continue
            rows.append(row)
            if len(rows) == limit:
                break
    finally:
        await result.close()
    return rows


async def _refresh(db: Database, rows: Sequence[StoreItem], now: datetime) -> None:
    expiring = [row for row in rows if row.ttl_minutes is not None]
    if not expiring:
        return
    async with db.transaction() as session:
        for row in expiring:
            row.expires_at = _expiry(now, row.ttl_minutes)
            await session.execute(
                update(StoreItem)
                .where(
                    StoreItem.tenant == row.tenant,
                    StoreItem.namespace == row.namespace,
                    StoreItem.key == row.key,
                    StoreItem.updated_at == row.updated_at,  # not if a put replaced it
                    _live(now),
                )
                .values(expires_at=row.expires_at)
            )
