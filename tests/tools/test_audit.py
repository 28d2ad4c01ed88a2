"""tools/audit.py: every attempt is chained; tampering is detected; erasing payloads is not."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from sqlalchemy import delete, select, update

from identity import Principal, local_principal
from store.models import AuditEntry, AuditPayload
from tools import AuditLog, AuditRecord

ANN = Principal.with_roles("acme", "ann", ["user"])


async def _entries(system) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    async with system.db.session() as session:
        return list((await session.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all())


async def _calls(system) -> None:  # type: ignore[no-untyped-def]
    ex = system.executor
    await ex.call_external(ANN, "notes_create", {"title": "a", "body": "secret body"}, via="api")
    await ex.call_external(ANN, "notes_search", {"query": "a"}, via="api")
    await ex.call_external(ANN, "notes_create", {"title": ""}, via="api")  # invalid
    await ex.call_external(ANN, "notes_delete", {"note_id": 1}, via="api")  # needs approval
    await ex.call_external(ANN, "audit_everything", {}, via="api")  # unknown


async def test_every_attempt_appends_one_entry_with_its_decision(system) -> None:  # type: ignore[no-untyped-def]
    await _calls(system)

    rows = [(e.event, e.tool, e.decision, e.status, e.error_code) for e in await _entries(system)]

    assert rows == [
        ("tool_call", "notes_create", "allow", "ok", None),
        ("tool_call", "notes_search", "allow", "ok", None),
        ("tool_call", "notes_create", "deny", "denied", "invalid_arguments"),
        ("approval_request", "notes_delete", "pending", "pending", None),
        (
            "tool_call",
            "notes_delete",
            "approval_required",
            "approval_required",
            "approval_required",
        ),
        ("tool_call", "audit_everything", "deny", "denied", "unknown_tool"),
    ]
    first = (await _entries(system))[0]
    assert (first.tenant, first.actor, first.via) == ("acme", "ann", "api")
    assert first.latency_ms is not None and first.latency_ms >= 0
    assert first.args_digest and first.result_digest
    assert (await system.executor.audit.verify()).ok


async def test_a_tool_name_no_tool_could_have_is_chained_as_invalid(system) -> None:  # type: ignore[no-untyped-def]
    # Names come from models: a NUL byte (PostgreSQL refuses it in text) or a very long
    # name must not reach the chain; a name tools could have is kept as it is.
    ex = system.executor
    await ex.call_external(ANN, "notes\x00drop", {}, via="api")
    await ex.call_external(ANN, "x" * 5000, {}, via="api")
    await ex.call_external(ANN, "no_such_tool", {}, via="api")

    tools = [(e.tool, e.error_code) for e in await _entries(system)]

    assert tools == [
        ("(invalid name)", "unknown_tool"),
        ("(invalid name)", "unknown_tool"),
        ("no_such_tool", "unknown_tool"),
    ]
    assert (await system.executor.audit.verify()).ok


async def test_entries_hold_digests_and_payloads_sit_beside_them(system) -> None:  # type: ignore[no-untyped-def]
    await _calls(system)

    async with system.db.session() as session:
        raw = [tuple(row) for row in (await session.execute(select(AuditEntry))).all()]
        payload = await session.get(AuditPayload, 1)

    assert "secret body" not in repr(raw)
    assert payload is not None and payload.args == {"title": "a", "body": "secret body"}


async def test_editing_an_entry_breaks_the_chain(system) -> None:  # type: ignore[no-untyped-def]
    await _calls(system)
    async with system.db.transaction() as session:
        await session.execute(
            update(AuditEntry).where(AuditEntry.seq == 3).values(decision="allow")
        )

    report = await system.executor.audit.verify()

    assert not report.ok
    assert any("entry 3" in problem and "edited" in problem for problem in report.problems)


async def test_rewriting_an_entry_and_its_hash_breaks_the_next_link(system) -> None:  # type: ignore[no-untyped-def]
    from tools.audit import link_hash

    await _calls(system)
    async with system.db.transaction() as session:
        entry = await session.get(AuditEntry, 2)
        assert entry is not None
        entry.status = "failed"
        entry.hash = link_hash(entry.prev_hash, entry)

    report = await system.executor.audit.verify()

    assert any("entry 3" in problem and "prev_hash" in problem for problem in report.problems)


async def test_deleting_an_entry_is_detected(system) -> None:  # type: ignore[no-untyped-def]
    await _calls(system)
    async with system.db.transaction() as session:
        await session.execute(delete(AuditEntry).where(AuditEntry.seq == 2))

    report = await system.executor.audit.verify()

    assert not report.ok and any("sequence" in problem for problem in report.problems)


async def test_changing_stored_arguments_is_detected(system) -> None:  # type: ignore[no-untyped-def]
    await _calls(system)
    async with system.db.transaction() as session:
        await session.execute(
            update(AuditPayload).where(AuditPayload.seq == 1).values(args={"title": "forged"})
        )

    report = await system.executor.audit.verify()

    assert report.problems == ["entry 1: stored arguments do not match the digest"]


async def test_erasing_payloads_keeps_the_chain_valid(system) -> None:  # type: ignore[no-untyped-def]
    await _calls(system)
    other = local_principal(tenant="other")
    await system.executor.call_external(other, "notes_create", {"title": "o", "body": "keep"})

    erased = await system.executor.audit.erase_payloads(tenant="acme", actor="ann")

    assert erased == 6
    report = await system.executor.audit.verify()
    assert report.ok and report.erased_payloads == 6 and report.entries == 7
    async with system.db.session() as session:
        kept = await session.get(AuditPayload, 7)
        gone = await session.get(AuditPayload, 1)
    assert kept is not None and kept.args == {"title": "o", "body": "keep"}
    assert gone is not None and (gone.args, gone.result, gone.salt) == (None, None, None)


async def test_concurrent_appends_make_one_unbroken_chain(system) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    logs = [AuditLog(system.db), AuditLog(system.db)]  # two "processes": separate locks

    async def write(log: AuditLog, index: int) -> int:
        return await log.append(
            AuditRecord(
                "tool_call", "acme", "ann", "notes_search", "allow", "ok", args={"i": index}
            )
        )

    seqs = await asyncio.gather(*(write(logs[i % 2], i) for i in range(20)))

    assert sorted(seqs) == list(range(1, 21))
    assert (await system.executor.audit.verify()).ok


async def test_entries_are_listed_per_tenant_newest_first(system) -> None:  # type: ignore[no-untyped-def]
    await _calls(system)
    await system.executor.call_external(
        local_principal(tenant="other"), "notes_search", {"query": ""}
    )

    acme = await system.executor.audit.entries(tenant="acme", limit=3, with_payloads=True)

    assert [entry["seq"] for entry in acme] == [6, 5, 4]
    assert all(entry["tenant"] == "acme" for entry in acme)
    assert acme[0]["args"] == {}


def _record(n: int) -> AuditRecord:
    return AuditRecord(
        event="tool_call", tenant="acme", actor="ann", tool="t", decision="allow", status=f"s{n}"
    )


async def test_concurrent_appends_share_commits_and_keep_call_order(system, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    log = AuditLog(system.db)
    transactions = 0
    opened = system.db.transaction

    def counting():  # type: ignore[no-untyped-def]
        nonlocal transactions
        transactions += 1
        return opened()

    monkeypatch.setattr(system.db, "transaction", counting)
    seqs = await asyncio.gather(*(log.append(_record(n)) for n in range(40)))
    monkeypatch.undo()

    assert seqs == list(range(1, 41))  # the order the appends were made in
    assert transactions < 40  # group commit: callers waiting together share a transaction
    assert [e.status for e in await _entries(system)] == [f"s{n}" for n in range(40)]
    assert (await log.verify()).ok


async def test_unwaited_appends_commit_in_order_and_readers_flush_first(system) -> None:  # type: ignore[no-untyped-def]
    log = AuditLog(system.db)

    assert await log.append(_record(0), wait=False) is None
    assert await log.append(_record(1), wait=False) is None
    waited = await log.append(_record(2))
    listed = await log.entries(tenant="acme")  # flushes what is still queued

    assert waited == 3
    assert [entry["status"] for entry in listed] == ["s2", "s1", "s0"]
    await log.append(_record(3), wait=False)
    assert (await log.verify()).entries == 4


async def test_successful_reads_are_audited_without_waiting_writes_before_returning(
    system,  # type: ignore[no-untyped-def]
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    executor = system.executor
    assert executor.defer_read_audit  # what runtime.system builds
    gate = asyncio.Event()
    opened = system.db.transaction

    @asynccontextmanager
    async def held():  # type: ignore[no-untyped-def]
        await gate.wait()  # no audit batch can commit until the gate opens
        async with opened() as session:
            yield session

    await executor.call_external(ANN, "notes_create", {"title": "a", "body": "b"})
    monkeypatch.setattr(system.db, "transaction", held)
    try:
        read = await asyncio.wait_for(
            executor.call_external(ANN, "notes_search", {"query": "a"}), 5
        )
        write = asyncio.ensure_future(
            executor.call_external(ANN, "tickets_create", {"title": "t", "body": "b"})
        )
        await asyncio.sleep(0)
        assert read.ok and not write.done()  # the read returned; the write waits
    finally:
        gate.set()
        monkeypatch.undo()
    assert (await asyncio.wait_for(write, 5)).ok
    await executor.audit.flush()
    tools = [entry.tool for entry in await _entries(system)]
    assert tools == ["notes_create", "notes_search", "tickets_create"]
