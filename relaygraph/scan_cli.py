"""``relaygraph scan PATH...|- [--json]``: report personal data in files without storing anything.

Each input is read as UTF-8 text (``-`` is standard input) and scanned with ``privacy.scan_text``.
``--json`` prints one object per input, in input order:
``{"input", "sensitivity", "findings": [{"type", "start", "end", "text", "confidence",
"detail"?}]}``
with offsets in characters of the decoded text. An input that cannot be read gets
``{"input", "sensitivity": null, "findings": [], "error": code, "message": text}`` (and a line on
stderr); the others are still scanned. Exit codes: 0 every input scanned, 2 at least one input
could not be read.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_OK = 0
EXIT_BAD_INPUT = 2
MAX_INPUT_BYTES = 50 * 1024 * 1024
_STYLE = {"none": "green", "personal": "yellow", "financial": "magenta", "special": "bold red"}


class InputError(Exception):
    """An input that cannot be scanned; ``code`` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _decode(raw: bytes, name: str) -> str:
    if len(raw) > MAX_INPUT_BYTES:
        raise InputError("too_large", f"{name}: {len(raw)} bytes exceeds {MAX_INPUT_BYTES}")
    if b"\x00" in raw[:8192]:
        raise InputError("binary", f"{name}: binary data; extract its text first")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            "not_text", f"{name}: not UTF-8 text (invalid byte at offset {exc.start})"
        ) from None


def read_input(name: str) -> str:
    """The text of ``name`` (a path, or ``-`` for standard input).

    Raises:
        InputError: missing, a directory, unreadable, too large, binary or not UTF-8.
    """
    if name == "-":
        return _decode(sys.stdin.buffer.read(), "-")
    path = Path(name)
    try:
        if path.is_dir():
            raise InputError("is_directory", f"{name}: is a directory; pass files")
        size = path.stat().st_size
        if size > MAX_INPUT_BYTES:
            raise InputError("too_large", f"{name}: {size} bytes exceeds {MAX_INPUT_BYTES}")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError("not_found", f"{name}: no such file") from None
    except PermissionError:
        raise InputError("permission_denied", f"{name}: permission denied") from None
    except OSError as exc:
        raise InputError("unreadable", f"{name}: {exc.strerror or exc}") from None
    return _decode(raw, name)


def _print_human(name: str, result: Any) -> None:
    level = result.sensitivity.value
    count = len(result.findings)
    _out.print(
        f"[bold]{escape(name)}[/]: [{_STYLE[level]}]{level}[/] "
        f"({count} finding{'s' if count != 1 else ''})"
    )
    for f in result.findings:
        detail = f" {f.detail}" if f.detail else ""
        shown = json.dumps(f.text, ensure_ascii=False)
        _out.print(
            f"  {f.start:>6}-{f.end:<6} {f.type.value:<18} {escape(shown)}"
            f"  [dim]{f.confidence:.2f}{escape(detail)}[/]"
        )


def scan_command(
    inputs: Annotated[
        list[str],
        typer.Argument(help="Files to scan; '-' reads standard input.", metavar="PATH"),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per input, in input order.")
    ] = False,
) -> None:
    """Scan files for personal data and special categories; nothing is stored."""
    from privacy import scan_text

    failed = False
    for name in inputs:
        try:
            result = scan_text(read_input(name))
        except InputError as exc:
            failed = True
            _err.print(f"[bold red]error:[/] {escape(str(exc))}")
            if as_json:
                error: dict[str, Any] = {"input": name, "sensitivity": None, "findings": []}
                error |= {"error": exc.code, "message": str(exc)}
                print(json.dumps(error, ensure_ascii=False), flush=True)
            continue
        if as_json:
            print(json.dumps({"input": name, **result.to_dict()}, ensure_ascii=False), flush=True)
        else:
            _print_human(name, result)
    raise typer.Exit(EXIT_BAD_INPUT if failed else EXIT_OK)
