"""tools/builtin/files.py: sandboxed files under a root, one folder per tenant."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from identity import Principal
from tools import BuiltinConfig, ToolExecutor, ToolPolicy, ToolRegistry, builtin_tools

ANN = Principal.with_roles("acme", "ann", ["user"])
OTTO = Principal.with_roles("other", "otto", ["user"])


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "files"


@pytest.fixture
def executor(system, root: Path) -> ToolExecutor:  # type: ignore[no-untyped-def]
    registry = ToolRegistry(builtin_tools(BuiltinConfig(files_root=root)))
    return ToolExecutor(system.db, ToolPolicy(registry))


async def test_write_read_list_round_trip(executor: ToolExecutor, root: Path) -> None:
    written = await executor.call_external(
        ANN, "files_write", {"path": "docs/plan.txt", "content": "ship it"}
    )
    read = await executor.call_external(ANN, "files_read", {"path": "docs/plan.txt"})
    listed = await executor.call_external(ANN, "files_list", {"path": "docs"})

    assert written.ok and written.output == {"path": "docs/plan.txt", "size": 7, "created": True}
    assert read.output["content"] == "ship it" and not read.output["truncated"]
    assert listed.output["entries"] == [{"name": "plan.txt", "kind": "file", "size": 7}]
    assert (root / "acme" / "docs" / "plan.txt").read_text() == "ship it"
    assert not read.trusted  # files are an untrusted source by default


async def test_tenants_do_not_share_files(executor: ToolExecutor) -> None:
    await executor.call_external(ANN, "files_write", {"path": "a.txt", "content": "acme"})

    other = await executor.call_external(OTTO, "files_read", {"path": "a.txt"})

    assert other.error.code == "not_found"


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "../acme2/x",
        "docs/../../other/a.txt",
        "..",
        "C:\\Windows\\win.ini",
        "\\\\server\\share",
        "~/secrets",
        "ok\x00.txt",
    ],
)
async def test_escapes_are_refused(executor: ToolExecutor, path: str) -> None:
    read = await executor.call_external(ANN, "files_read", {"path": path})
    write = await executor.call_external(ANN, "files_write", {"path": path, "content": "x"})

    assert read.error.code == "path_not_allowed"
    assert write.error.code == "path_not_allowed"


async def test_symlink_escapes_are_refused(
    executor: ToolExecutor, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret")
    (root / "acme").mkdir(parents=True)
    os.symlink(outside, root / "acme" / "link")
    os.symlink(outside / "secret.txt", root / "acme" / "secret.txt")

    through_dir = await executor.call_external(ANN, "files_read", {"path": "link/secret.txt"})
    through_file = await executor.call_external(ANN, "files_read", {"path": "secret.txt"})
    write = await executor.call_external(
        ANN, "files_write", {"path": "link/new.txt", "content": "x"}
    )
    listing = await executor.call_external(ANN, "files_list", {"path": "link"})

    assert [o.error.code for o in (through_dir, through_file, write, listing)] == [
        "path_not_allowed"
    ] * 4
    assert not (outside / "new.txt").exists()


async def test_symlink_inside_the_root_is_refused_at_open(
    executor: ToolExecutor, root: Path
) -> None:
    folder = root / "acme"
    folder.mkdir(parents=True)
    (folder / "real.txt").write_text("fine")
    os.symlink(folder / "real.txt", folder / "alias.txt")

    outcome = await executor.call_external(ANN, "files_read", {"path": "alias.txt"})

    assert outcome.error.code == "path_not_allowed"


async def test_existing_files_are_not_replaced_unless_asked(executor: ToolExecutor) -> None:
    await executor.call_external(ANN, "files_write", {"path": "a.txt", "content": "one"})

    refused = await executor.call_external(ANN, "files_write", {"path": "a.txt", "content": "two"})
    replaced = await executor.call_external(
        ANN, "files_write", {"path": "a.txt", "content": "two", "overwrite": True}
    )
    read = await executor.call_external(ANN, "files_read", {"path": "a.txt", "max_bytes": 2})

    assert refused.error.code == "file_exists"
    assert replaced.ok and replaced.output["created"] is False
    assert read.output == {"path": "a.txt", "content": "tw", "size": 3, "truncated": True}


async def test_write_needs_approval_after_untrusted_content(
    executor: ToolExecutor, root: Path
) -> None:
    outcome = await executor.call_external(
        ANN, "files_write", {"path": "x.txt", "content": "x"}, tainted=True
    )

    assert outcome.status == "approval_required"
    assert outcome.approval.preview["would"] == "create 'x.txt' with 1 bytes"
    assert not (root / "acme" / "x.txt").exists()
