"""Erasure on PostgreSQL (``runtime.erasure``): after a user is erased, no table, TOAST or
index file of the database holds their e-mail, name or CPR number, while another user's data
is still in those files. PostgreSQL keeps old row versions until a table is rewritten, so
this checks the eraser's ``VACUUM (FULL)``: read after a ``CHECKPOINT`` (shared buffers
flushed) from the paths ``pg_relation_filepath`` gives under the cluster's data directory.

Not asserted: the WAL (``pg_wal``) still holds the inserts until its segments are recycled,
and system catalogs (``pg_statistic`` samples of column values); SECURITY.md says what an
operator does about those, and about replicas and backups."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg
import pytest

from identity import Principal
from runtime.memory_services import open_memory_services
from runtime.settings import Settings
from runtime.system import open_system
from store.database import libpq_url
from tests.memory.memory_helpers import WordHashEmbedder
from tests.runtime.test_erasure import CPR, EMAIL, NAME, OTHER_EMAIL, seed_run

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

MARIA = Principal.with_roles("acme", "maria", ["user"])
BOB = Principal.with_roles("acme", "bob", ["user"])
_FIRST_USER_OID = 16384  # FirstNormalObjectId: below it, initdb's system catalogs


def relation_files(cluster: Any, url: str) -> list[Path]:
    """Every file (main fork, extra segments, free-space and visibility maps) of the
    database's own tables, TOAST tables and indexes, after a checkpoint."""
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        paths = [
            row[0]
            for row in conn.execute(
                "SELECT pg_relation_filepath(oid) FROM pg_class "
                "WHERE oid >= %s AND relkind IN ('r', 't', 'i', 'm') "
                "AND pg_relation_filepath(oid) IS NOT NULL",
                (_FIRST_USER_OID,),
            )
        ]
    files: list[Path] = []
    for relative in paths:
        base = cluster.data / relative
        pattern = re.compile(re.escape(base.name) + r"(\.\d+|_fsm|_vm|_init)?")
        files.extend(p for p in base.parent.iterdir() if pattern.fullmatch(p.name))
    assert files, "the database has relation files"
    return files


def holders(files: list[Path], needle: str) -> list[str]:
    forms = [needle.lower().encode(), needle.lower().encode("utf-16-le")]
    return [
        path.name
        for path in files
        if (data := path.read_bytes().lower()) and any(form in data for form in forms)
    ]


async def test_erasure_on_postgres_leaves_no_trace_in_the_table_files(
    postgres_cluster: Any, data_dir: Path
) -> None:
    url = postgres_cluster.database_url()
    settings = Settings(data_dir=data_dir, database_url=url)
    secret = f"My name is {NAME}, e-mail {EMAIL}, CPR {CPR}. I have diabetes."
    async with open_system(settings) as system:
        await seed_run(system, MARIA, secret)
        await seed_run(system, BOB, f"Bob here, write to {OTHER_EMAIL}.")
        async with open_memory_services(system, embedder=WordHashEmbedder()) as services:
            await services.memories.remember(MARIA, f"{NAME} reads mail at {EMAIL}.")
            await services.memories.remember(BOB, f"Bob's address is {OTHER_EMAIL}.")
            assert holders(relation_files(postgres_cluster, url), EMAIL), "seeded on disk"

            report = await services.eraser().erase(tenant="acme", user="maria")

            assert report.ok and report.not_compacted == []
            assert {
                "postgresql:memories",
                "postgresql:runs",
                "postgresql:run_events",
                "postgresql:checkpoints",
                "postgresql:checkpoint_blobs",
            } <= set(report.compacted)
            assert report.to_dict()["not_compacted"] == []

    files = relation_files(postgres_cluster, url)
    for needle in (EMAIL, NAME, CPR):
        assert holders(files, needle) == [], needle
    assert holders(files, OTHER_EMAIL), "bob's data must survive maria's erasure"
