"""Holds and release on a legal basis: special and financial content waits until a basis is
recorded; withdrawal and rejection delete; nothing held is embedded or recalled."""

from __future__ import annotations

from pathlib import Path

import pytest

from identity import Principal
from memory.consent import LegalBasisError, LegalBasisNotFoundError
from memory.memories import MemoryConfig
from memory.types import Scope
from privacy import Sensitivity
from tests.memory.conftest import OpenVectors
from tests.memory.memory_helpers import WordHashEmbedder, open_memories

pytestmark = pytest.mark.usefixtures("backend")  # SQLite, and PostgreSQL (slow)

ALICE = Principal.with_roles("acme", "alice", ["user"])
BOB = Principal.with_roles("acme", "bob", ["user"])
HEALTH = "Alice was diagnosed with diabetes last year."
CARD = "Alice pays with card 4111 1111 1111 1111."


async def test_special_and_financial_content_is_held_until_consent(
    tmp_path: Path, open_vectors: OpenVectors
) -> None:
    embedder = WordHashEmbedder()
    async with open_memories(tmp_path, embedder, vectors=open_vectors) as env:
        health = await env.memories.remember(ALICE, HEALTH)
        card = await env.memories.remember(ALICE, CARD)
        plain = await env.memories.remember(ALICE, "Alice likes long walks.")
        assert (health.status, health.sensitivity) == ("awaiting_basis", "special")
        assert (card.status, card.sensitivity) == ("awaiting_basis", "financial")
        assert plain.status == "active"
        assert embedder.calls == 1  # held text never reached the embedder
        assert await env.memories.recall(ALICE, "diabetes diagnosed") == []
        # Bob's consent does not release Alice's data.
        bobs = await env.consent.grant(tenant="acme", subject="bob", recorded_by="bob")
        assert bobs.released == 0

        granted = await env.consent.grant(
            tenant="acme", subject="alice", recorded_by="alice", categories=("special",)
        )
        assert granted.released == 1
        [hit] = await env.memories.recall(ALICE, "diabetes diagnosed")
        assert hit.memory_id == health.memory_id
        held = await env.memories.list_memories(
            tenant="acme", user="alice", status="awaiting_basis"
        )
        assert [m.memory_id for m in held] == [card.memory_id]
        # New special content is stored active under the recorded basis.
        later = await env.memories.remember(ALICE, "Alice takes insulin in the morning.")
        assert later.status == "active"
        rows = {
            m.memory_id: m for m in await env.memories.list_memories(tenant="acme", user="alice")
        }
        assert rows[later.memory_id].legal_basis == "consent"

        withdrawn = await env.consent.withdraw(
            tenant="acme", subject="alice", basis_id=granted.basis.id, by="alice"
        )
        assert withdrawn.deleted == 2 and withdrawn.basis.withdrawn_at is not None
        remaining = {
            m.memory_id for m in await env.memories.list_memories(tenant="acme", user="alice")
        }
        assert remaining == {card.memory_id, plain.memory_id}
        assert env.vectors.index("memories").count(Scope("acme", "alice")) == 1
        bases = await env.consent.list_bases(tenant="acme", subject="alice")
        assert [b.withdrawn_by for b in bases] == ["alice"]

        assert (await env.consent.reject_held(tenant="acme", subject="alice")).deleted == 1
        remaining = {
            m.memory_id for m in await env.memories.list_memories(tenant="acme", user="alice")
        }
        assert remaining == {plain.memory_id}


async def test_other_bases_need_who_and_why(tmp_path: Path, open_vectors: OpenVectors) -> None:
    async with open_memories(tmp_path, vectors=open_vectors) as env:
        await env.memories.remember(ALICE, CARD)
        with pytest.raises(LegalBasisError, match="needs a note"):
            await env.consent.grant(
                tenant="acme", subject="alice", basis="contract", recorded_by="ops"
            )
        with pytest.raises(LegalBasisError, match="someone other"):
            await env.consent.grant(tenant="acme", subject="alice", recorded_by="ops")
        with pytest.raises(LegalBasisError, match="unknown legal basis"):
            await env.consent.grant(
                tenant="acme", subject="alice", basis="vibes", recorded_by="alice"
            )
        with pytest.raises(LegalBasisError, match="categories"):
            await env.consent.grant(
                tenant="acme", subject="alice", recorded_by="alice", categories=("secret",)
            )
        result = await env.consent.grant(
            tenant="acme",
            subject="alice",
            basis="contract",
            purpose="billing",
            categories=("financial",),
            recorded_by="ops",
            note="Contract 2026-17: card on file for billing",
        )
        assert result.released == 0  # the held card memory's purpose is personalisation
        both = await env.consent.grant(
            tenant="acme",
            subject="alice",
            basis="contract",
            purpose="personalisation",
            categories=("financial",),
            recorded_by="ops",
            note="Contract 2026-17",
        )
        assert both.released == 1 and both.basis.recorded_by == "ops"
        with pytest.raises(LegalBasisNotFoundError):
            await env.consent.withdraw(tenant="acme", subject="bob", basis_id=both.basis.id, by="x")


async def test_hold_set_is_configurable(tmp_path: Path, open_vectors: OpenVectors) -> None:
    config = MemoryConfig(hold_sensitivities=frozenset({Sensitivity.SPECIAL}))
    async with open_memories(tmp_path, vectors=open_vectors, config=config) as env:
        assert (await env.memories.remember(ALICE, CARD)).status == "active"
        assert (await env.memories.remember(ALICE, HEALTH)).status == "awaiting_basis"
