"""Sandboxed files: list, read and write under a configured root, one folder per tenant.

Paths are relative to the tenant's folder. Absolute paths, ``..`` components,
and anything whose resolved location (symlinks followed) leaves the folder are
refused before any file is opened; the final component is opened with
``O_NOFOLLOW`` so a symlink swapped in after the check is refused too.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tools.types import ToolContext, ToolError, ToolSpec

# Tenant ids spelled like this are their own folder name; any other id (".", "..",
# "a/b", "a b") gets "_" + a digest, which no safe name can equal (they start alnum).
_SAFE_TENANT_DIR = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
MAX_READ_BYTES = 1_000_000


class FilesListInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(default=".", max_length=1024, description="Folder to list, relative.")


class FileEntry(BaseModel):
    name: str
    kind: str
    size: int


class FilesListOutput(BaseModel):
    path: str
    entries: list[FileEntry]


class FilesReadInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, max_length=1024, description="File to read, relative.")
    max_bytes: int = Field(
        default=200_000, ge=1, le=MAX_READ_BYTES, description="Most bytes to return."
    )


class FilesReadOutput(BaseModel):
    path: str
    content: str
    size: int
    truncated: bool


class FilesWriteInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, max_length=1024, description="File to write, relative.")
    content: str = Field(max_length=1_000_000, description="The whole new text of the file.")
    overwrite: bool = Field(default=False, description="Replace the file if it exists.")


class FilesWriteOutput(BaseModel):
    path: str
    size: int
    created: bool


class Sandbox:
    """Resolves relative paths inside ``root/<tenant>``, refusing every escape."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, tenant: str) -> Path:
        name = tenant
        if not _SAFE_TENANT_DIR.fullmatch(tenant):
            name = "_" + hashlib.sha256(tenant.encode()).hexdigest()[:32]
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder.resolve()

    def resolve(self, tenant: str, relative: str) -> tuple[Path, str]:
        """The absolute path for ``relative`` and its clean relative spelling.

        Raises:
            ToolError: ``path_not_allowed`` for absolute paths, ``..``, NUL bytes or an
                escape through a symlink.
        """
        if "\x00" in relative:
            raise ToolError("path_not_allowed", "paths cannot contain NUL bytes")
        if (
            PurePosixPath(relative).is_absolute()
            or PureWindowsPath(relative).is_absolute()
            or PureWindowsPath(relative).drive
            or relative.startswith(("\\", "~"))
        ):
            raise ToolError(
                "path_not_allowed", f"{relative!r} is absolute; give a path relative to the root"
            )
        parts = [part for part in re.split(r"[\\/]+", relative) if part not in ("", ".")]
        if ".." in parts:
            raise ToolError("path_not_allowed", f"{relative!r} climbs out with '..'")
        folder = self.folder(tenant)
        target = folder.joinpath(*parts)
        resolved = target.resolve()
        if resolved != folder and folder not in resolved.parents:
            raise ToolError(
                "path_not_allowed", f"{relative!r} leads outside the files root (a symlink?)"
            )
        return target, "/".join(parts) or "."


def _open_nofollow(path: Path, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_NOFOLLOW, 0o640)
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: the last component is a symlink
            raise ToolError("path_not_allowed", "symlinks cannot be opened") from None
        raise


def files_tools(root: Path) -> list[ToolSpec]:
    sandbox = Sandbox(root)

    async def files_list(ctx: ToolContext, args: FilesListInput) -> FilesListOutput:
        target, clean = sandbox.resolve(ctx.principal.tenant, args.path)
        if not target.is_dir():
            raise ToolError("not_found", f"there is no folder {clean!r}")

        def scan() -> list[FileEntry]:
            entries = []
            for entry in sorted(os.scandir(target), key=lambda e: e.name)[:1000]:
                if entry.is_symlink():
                    kind, size = "symlink", 0
                elif entry.is_dir():
                    kind, size = "dir", 0
                else:
                    kind, size = "file", entry.stat().st_size
                entries.append(FileEntry(name=entry.name, kind=kind, size=size))
            return entries

        return FilesListOutput(path=clean, entries=await asyncio.to_thread(scan))

    async def files_read(ctx: ToolContext, args: FilesReadInput) -> FilesReadOutput:
        target, clean = sandbox.resolve(ctx.principal.tenant, args.path)
        if not target.is_file():
            raise ToolError("not_found", f"there is no file {clean!r}")

        def read() -> tuple[bytes, int]:
            fd = _open_nofollow(target, os.O_RDONLY)
            with os.fdopen(fd, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                return handle.read(args.max_bytes), size

        data, size = await asyncio.to_thread(read)
        return FilesReadOutput(
            path=clean,
            content=data.decode("utf-8", errors="replace"),
            size=size,
            truncated=size > len(data),
        )

    async def files_write(ctx: ToolContext, args: FilesWriteInput) -> FilesWriteOutput:
        target, clean = sandbox.resolve(ctx.principal.tenant, args.path)
        if clean == "." or target.is_dir():
            raise ToolError("path_not_allowed", f"{clean!r} is a folder, not a file")

        def write() -> tuple[int, bool]:
            target.parent.mkdir(parents=True, exist_ok=True)
            sandbox.resolve(ctx.principal.tenant, args.path)  # again, after mkdir
            existed = target.exists()
            if existed and not args.overwrite:
                raise ToolError(
                    "file_exists", f"{clean!r} exists; pass overwrite=true to replace it"
                )
            data = args.content.encode()
            fd = _open_nofollow(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            return len(data), not existed

        size, created = await asyncio.to_thread(write)
        return FilesWriteOutput(path=clean, size=size, created=created)

    async def files_write_preview(ctx: ToolContext, args: FilesWriteInput) -> dict[str, Any]:
        target, clean = sandbox.resolve(ctx.principal.tenant, args.path)
        exists = target.is_file()
        if exists and not args.overwrite:
            return {"would": f"fail: {clean!r} exists and overwrite is false"}
        verb = "replace" if exists else "create"
        old = target.stat().st_size if exists else 0
        return {
            "would": f"{verb} {clean!r} with {len(args.content.encode())} bytes",
            "existing_bytes": old,
        }

    return [
        ToolSpec(
            name="files_list",
            title="List files",
            description="List a folder of the workspace files (names, kinds, sizes).",
            input_model=FilesListInput,
            output_model=FilesListOutput,
            handler=files_list,
            risk="read",
            scope="files:read",
            idempotent=True,
            source="files",
        ),
        ToolSpec(
            name="files_read",
            title="Read file",
            description="Read a text file of the workspace files (UTF-8; cut at max_bytes).",
            input_model=FilesReadInput,
            output_model=FilesReadOutput,
            handler=files_read,
            risk="read",
            scope="files:read",
            idempotent=True,
            source="files",
        ),
        ToolSpec(
            name="files_write",
            title="Write file",
            description=(
                "Write a text file in the workspace files; refuses to replace an existing "
                "file unless overwrite is true."
            ),
            input_model=FilesWriteInput,
            output_model=FilesWriteOutput,
            handler=files_write,
            risk="write",
            scope="files:write",
            approval="when_untrusted",
            transactional=False,
            dry_run=files_write_preview,
            source="files",
        ),
    ]
