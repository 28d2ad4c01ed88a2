"""Hybrid document retrieval: full-text and vector search, fused by reciprocal rank fusion.

Access control comes first. Both searches run only over chunks the principal may read
(same tenant; document ``ready`` and unexpired; owned by the principal or granted to them
or one of their roles): the full-text query carries the ACL in its WHERE clause, and the
vector search is restricted to the chunk ids the same condition yields, in each owner's
partition. Ranking never sees anything else, so nothing leaks through scores or counts.

Full text is SQLite FTS5 (bm25) or PostgreSQL ``tsvector`` (``ts_rank_cd``), OR-ing the
query's words so that partial matches still rank. Lists are fused with RRF
(score = Σ 1 / (k + rank), k = 60 by default, Cormack et al. 2009), which needs no score
calibration between bm25 and cosine. A rewrite hook may turn one query into several (all
lists are fused) and a rerank hook may reorder the fused hits. Every hit is marked
``trust="untrusted"`` and carries its citation (document, chunk, page, score).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from opentelemetry import trace
from sqlalchemy import ColumnElement, and_, column, exists, or_, select, table, text

from identity import Principal
from memory.document_metrics import DOCUMENT_SEARCH_SECONDS
from memory.document_types import (
    DocumentPermissionError,
    DocumentStatus,
    QueryRewriter,
    Reranker,
    RetrievedChunk,
)
from memory.embeddings import Embedder
from memory.types import Scope
from memory.vectors import VectorIndex
from store import Database
from store.models import Document, DocumentChunk, DocumentGrant

_tracer = trace.get_tracer(__name__)
_WORD = re.compile(r"\w+", re.UNICODE)
_MAX_QUERY_TERMS = 32
_FTS = table("document_chunks_fts", column("rowid"))
# Function words dropped from full-text queries (English and Danish): with OR semantics
# they would match nearly every chunk, and bm25's IDF is unreliable on small corpora.
_STOPWORDS = frozenset(
    """a an and are as at be by can could did do does for from had has have how i if in
    into is it its may me my no not of on or our should so than that the their them then
    there these they this to was we were what when where which who why will with would you
    your af at de den der det du en er et for fra har hvad hvem hvor hvordan i ikke jeg kan
    med men og om på som til var vi""".split()
)


@dataclass(frozen=True)
class RetrievalConfig:
    rrf_k: int = 60
    candidates: int = 30
    """How many hits each list contributes to the fusion."""
    max_query_chars: int = 2000
    min_vector_score: float | None = None
    """Drop vector hits less similar than this (cosine); None keeps the nearest whatever
    their distance (the right floor depends on the embedding model)."""


def visible_chunks(principal: Principal, now: datetime | None = None) -> ColumnElement[bool]:
    """The SQL condition "``principal`` may read this chunk" over ``DocumentChunk`` joined
    with ``Document``."""
    now = now or datetime.now(UTC)
    grantees = [
        and_(DocumentGrant.kind == "user", DocumentGrant.grantee == principal.user),
    ]
    if principal.roles:
        grantees.append(
            and_(DocumentGrant.kind == "role", DocumentGrant.grantee.in_(sorted(principal.roles)))
        )
    granted = exists().where(
        DocumentGrant.document_id == Document.id,
        DocumentGrant.tenant == principal.tenant,
        or_(*grantees),
        or_(DocumentGrant.expires_at.is_(None), DocumentGrant.expires_at > now),
    )
    return and_(
        DocumentChunk.document_id == Document.id,
        Document.tenant == principal.tenant,
        DocumentChunk.tenant == principal.tenant,
        Document.status == DocumentStatus.READY,
        DocumentChunk.status == "indexed",
        or_(Document.expires_at.is_(None), Document.expires_at > now),
        or_(DocumentChunk.expires_at.is_(None), DocumentChunk.expires_at > now),
        or_(Document.owner == principal.user, granted),
    )


def query_terms(query: str) -> list[str]:
    """The distinct words of ``query``, lower-cased, in order (at most 32), without
    function words unless the query has nothing else."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(query.lower()):
        seen.setdefault(word, None)
    words = list(seen)
    content = [word for word in words if word not in _STOPWORDS]
    return (content or words)[:_MAX_QUERY_TERMS]


class DocumentRetriever:
    """Searches the chunks a principal may read; see the module docstring."""

    def __init__(
        self,
        db: Database,
        vectors: VectorIndex,
        embedder: Embedder,
        *,
        config: RetrievalConfig | None = None,
        rewrite: QueryRewriter | None = None,
        rerank: Reranker | None = None,
    ) -> None:
        self.db = db
        self.vectors = vectors
        self.embedder = embedder
        self.config = config or RetrievalConfig()
        self.rewrite = rewrite
        self.rerank = rerank

    async def search(self, principal: Principal, query: str, *, k: int = 5) -> list[RetrievedChunk]:
        """The ``k`` best chunks for ``query`` that ``principal`` may read, best first.

        Raises:
            DocumentPermissionError: the principal lacks the ``documents:read`` scope.
            ValueError: ``k`` < 1.
        """
        if not principal.has_scope("documents:read"):
            raise DocumentPermissionError("searching documents needs the scope 'documents:read'")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        query = query.strip()[: self.config.max_query_chars]
        if not query:
            return []
        started = time.perf_counter()
        with _tracer.start_as_current_span("documents.search") as span:
            hits = await self._search(principal, query, k)
            span.set_attribute("documents.hits", len(hits))
            span.set_attribute("documents.chunk_ids", [hit.chunk_id for hit in hits])
        DOCUMENT_SEARCH_SECONDS.observe(time.perf_counter() - started)
        return hits

    async def _search(self, principal: Principal, query: str, k: int) -> list[RetrievedChunk]:
        queries = list(await self.rewrite(query)) if self.rewrite else [query]
        queries = [q for q in dict.fromkeys(q.strip() for q in queries) if q] or [query]
        now = datetime.now(UTC)
        allowed = await self._allowed_ids(principal, now)
        if not allowed:
            return []
        lists: list[list[str]] = []
        for text_query in queries:
            lists.append(await self._fulltext(principal, text_query, now))
        vector_lists = await self._vector_lists(principal.tenant, queries, allowed)
        lists.extend(vector_lists)
        fulltext_ranks = _best_ranks(lists[: len(queries)])
        vector_ranks = _best_ranks(vector_lists)
        fused = _rrf(lists, self.config.rrf_k)
        top = fused[: max(k, self.config.candidates) if self.rerank else k]
        hits = await self._load(principal, top, now)
        for hit in hits:
            hit.fulltext_rank = fulltext_ranks.get(hit.chunk_id)
            hit.vector_rank = vector_ranks.get(hit.chunk_id)
        if self.rerank is not None:
            hits = list(await self.rerank(query, hits))
        return hits[:k]

    async def _allowed_ids(self, principal: Principal, now: datetime) -> dict[str, set[str]]:
        """Readable chunk ids embedded by the current model, by owner (= vector partition)."""
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(DocumentChunk.owner, DocumentChunk.chunk_id)
                    .select_from(DocumentChunk)
                    .join(Document, Document.id == DocumentChunk.document_id)
                    .where(
                        visible_chunks(principal, now),
                        DocumentChunk.embedding_model == self.embedder.model_id,
                    )
                )
            ).all()
        allowed: dict[str, set[str]] = defaultdict(set)
        for owner, chunk_id in rows:
            allowed[owner].add(chunk_id)
        return allowed

    async def _fulltext(self, principal: Principal, query: str, now: datetime) -> list[str]:
        terms = query_terms(query)
        if not terms:
            return []
        statement = (
            select(DocumentChunk.chunk_id)
            .select_from(DocumentChunk)
            .join(Document, Document.id == DocumentChunk.document_id)
            .where(visible_chunks(principal, now))
            .limit(self.config.candidates)
        )
        if self.db.is_sqlite:
            match = " OR ".join(f'"{term}"' for term in terms)
            statement = (
                statement.join(_FTS, _FTS.c.rowid == DocumentChunk.id)
                .where(text("document_chunks_fts MATCH :match"))
                .order_by(text("bm25(document_chunks_fts)"), DocumentChunk.id)
                .params(match=match)
            )
        else:
            tsquery = " | ".join(terms)
            statement = (
                statement.where(text("document_chunks.text_tsv @@ to_tsquery('simple', :match)"))
                .order_by(
                    text("ts_rank_cd(document_chunks.text_tsv, to_tsquery('simple', :match)) DESC"),
                    DocumentChunk.id,
                )
                .params(match=tsquery)
            )
        async with self.db.session() as session:
            return list((await session.execute(statement)).scalars())

    async def _vector_lists(
        self, tenant: str, queries: Sequence[str], allowed: dict[str, set[str]]
    ) -> list[list[str]]:
        vectors = await self.embedder.aembed(list(queries))
        lists = []
        for vector in vectors:
            hits = []
            for owner, ids in allowed.items():
                hits.extend(
                    await asyncio.to_thread(
                        self.vectors.query,
                        Scope(tenant, owner),
                        vector,
                        self.config.candidates,
                        ids=ids,
                    )
                )
            floor = self.config.min_vector_score
            if floor is not None:
                hits = [hit for hit in hits if hit.score >= floor]
            hits.sort(key=lambda hit: -hit.score)
            lists.append([hit.id for hit in hits[: self.config.candidates]])
        return lists

    async def _load(
        self, principal: Principal, ranked: list[tuple[str, float]], now: datetime
    ) -> list[RetrievedChunk]:
        if not ranked:
            return []
        scores = dict(ranked)
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(DocumentChunk, Document.source)
                    .join(Document, Document.id == DocumentChunk.document_id)
                    .where(visible_chunks(principal, now), DocumentChunk.chunk_id.in_(scores))
                )
            ).all()
        hits = [
            RetrievedChunk(
                document_id=chunk.document_id,
                chunk_id=chunk.chunk_id,
                page=chunk.page,
                source=source,
                text=chunk.text,
                score=scores[chunk.chunk_id],
                sensitivity=chunk.sensitivity,
                owner=chunk.owner,
            )
            for chunk, source in rows
        ]
        hits.sort(key=lambda hit: (-hit.score, hit.chunk_id))
        return hits


def _best_ranks(lists: list[list[str]]) -> dict[str, int]:
    ranks: dict[str, int] = {}
    for ranked in lists:
        for rank, item in enumerate(ranked, start=1):
            if rank < ranks.get(item, rank + 1):
                ranks[item] = rank
    return ranks


def _rrf(lists: list[list[str]], k: int) -> list[tuple[str, float]]:
    """Reciprocal rank fusion of ranked id lists: best first, ties broken by id."""
    scores: dict[str, float] = defaultdict(float)
    for ranked in lists:
        for rank, item in enumerate(ranked, start=1):
            scores[item] += 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))
