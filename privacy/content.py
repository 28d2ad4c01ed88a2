"""Scanning LangChain-style message content, including files sent inline as base64.

Chat frontends send files inside messages: agent-chat-ui and LangChain's v0 blocks use
``{"type": "file", "source_type": "base64", "mime_type": ..., "data": ...}``, LangChain v1 uses
``{"type": "file", "base64": ..., "mime_type": ...}`` and ``{"type": "text-plain", "text": ...}``,
and OpenAI-style blocks carry ``{"type": "file", "file": {"file_data": "data:...;base64,..."}}``.
Text files are decoded and scanned; other types are scanned when the caller passes an
extractor for them (PDF and DOCX parsing lives with document ingestion, not here); anything
else (images, undecodable data) is reported as ``unscanned`` so the caller can hold it rather
than let unseen content through (fail closed).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from privacy.scanner import DEFAULT_OPTIONS, ScanOptions, scan_text
from privacy.types import Finding, ScanResult, Sensitivity

MAX_DECODED_BYTES = 10 * 1024 * 1024
TEXT_MIME_TYPES = frozenset(
    {"text/plain", "text/markdown", "text/x-markdown", "text/csv", "application/json"}
)
_DATA_URL = re.compile(r"data:(?P<mime>[\w.+\-]+/[\w.+\-]+)?(?:;[\w\-]+=[^;,]*)*;base64,", re.I)


class BlockStatus(StrEnum):
    SCANNED = "scanned"
    UNSUPPORTED = "unsupported"  # a file type that needs extraction first (PDF, DOCX, image)
    INVALID = "invalid"  # not valid base64, or not valid UTF-8 for a text type
    TOO_LARGE = "too_large"


@dataclass(frozen=True, slots=True)
class BlockScan:
    """One content block: where it is, what it was, and what was found in its text (offsets
    into the block's own text, or into the decoded file for a base64 block)."""

    index: int
    kind: str
    status: BlockStatus
    mime_type: str | None = None
    result: ScanResult = field(default_factory=ScanResult)
    error: str | None = None

    @property
    def findings(self) -> tuple[Finding, ...]:
        return self.result.findings


@dataclass(frozen=True, slots=True)
class ContentScan:
    """All blocks of one message's content. ``sensitivity`` covers what was read;
    ``unscanned`` lists blocks that were not, which a caller should treat as unknown."""

    blocks: tuple[BlockScan, ...]

    @property
    def sensitivity(self) -> Sensitivity:
        return Sensitivity.highest(b.result.sensitivity for b in self.blocks)

    @property
    def unscanned(self) -> tuple[BlockScan, ...]:
        return tuple(b for b in self.blocks if b.status is not BlockStatus.SCANNED)


Extractor = Callable[[bytes], str]
"""Turns a file's bytes into text (e.g. PDF or DOCX extraction), supplied by the caller so
this package stays free of parsers and I/O. It raises ``ValueError`` for a corrupt file."""


@dataclass(frozen=True, slots=True)
class _Limits:
    max_bytes: int
    extractors: Mapping[str, Extractor]


def _decode(
    data: str, mime_type: str | None, limits: _Limits
) -> tuple[str | None, BlockStatus, str | None]:
    """Decode a base64 (or data-URL) file to text: text types directly, other types through
    the caller's extractor for that type, if any."""
    match = _DATA_URL.match(data)
    if match:
        mime_type = mime_type or (match.group("mime") or "").lower() or None
        data = data[match.end() :]
    mime = (mime_type or "").split(";")[0].strip().lower()
    is_text = mime.startswith("text/") or mime in TEXT_MIME_TYPES
    extractor = limits.extractors.get(mime)
    if not is_text and extractor is None:
        return None, BlockStatus.UNSUPPORTED, f"no text extraction for {mime or 'unknown type'}"
    if len(data) * 3 // 4 > limits.max_bytes:
        return None, BlockStatus.TOO_LARGE, f"decoded size exceeds {limits.max_bytes} bytes"
    try:
        raw = base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        return None, BlockStatus.INVALID, f"invalid base64: {exc}"
    if extractor is not None:
        try:
            return extractor(raw), BlockStatus.SCANNED, None
        except ValueError as exc:
            return None, BlockStatus.INVALID, f"cannot extract text from {mime}: {exc}"
    try:
        return raw.decode("utf-8-sig"), BlockStatus.SCANNED, None
    except UnicodeDecodeError as exc:
        return None, BlockStatus.INVALID, f"not UTF-8 text: {exc.reason} at byte {exc.start}"


def _scan_block(index: int, block: Any, options: ScanOptions, limits: _Limits) -> BlockScan:
    if isinstance(block, str):
        return BlockScan(
            index, "text", BlockStatus.SCANNED, "text/plain", scan_text(block, options)
        )
    if not isinstance(block, Mapping):
        return BlockScan(index, type(block).__name__, BlockStatus.INVALID, error="not a block")
    kind = str(block.get("type", ""))
    if kind in ("text", "text-plain") and isinstance(block.get("text"), str):
        mime = block.get("mime_type") or "text/plain"
        return BlockScan(index, kind, BlockStatus.SCANNED, mime, scan_text(block["text"], options))
    data: str | None = None
    mime_type = block.get("mime_type") or block.get("mimeType")
    if isinstance(block.get("base64"), str):
        data = block["base64"]
    elif block.get("source_type") == "base64" and isinstance(block.get("data"), str):
        data = block["data"]
    elif isinstance(block.get("file"), Mapping) and isinstance(block["file"].get("file_data"), str):
        data = block["file"]["file_data"]
    elif isinstance(block.get("source"), Mapping) and block["source"].get("type") == "base64":
        data = block["source"].get("data")
        mime_type = mime_type or block["source"].get("media_type")
    if data is None:
        # URLs and ids point at content we do not hold; images need OCR.
        return BlockScan(index, kind, BlockStatus.UNSUPPORTED, mime_type, error="no inline data")
    text, status, error = _decode(data, mime_type, limits)
    result = scan_text(text, options) if text is not None else ScanResult()
    return BlockScan(index, kind, status, mime_type, result, error)


def scan_content(
    content: str | Iterable[Any],
    options: ScanOptions = DEFAULT_OPTIONS,
    *,
    max_decoded_bytes: int = MAX_DECODED_BYTES,
    extractors: Mapping[str, Extractor] | None = None,
) -> ContentScan:
    """Scan one message's ``content``: a string or a list of content blocks. ``extractors``
    maps MIME types (``application/pdf``) to functions that turn a file's bytes into text;
    offsets of such a block's findings refer to the extracted text."""
    limits = _Limits(max_decoded_bytes, extractors or {})
    if isinstance(content, str):
        return ContentScan((_scan_block(0, content, options, limits),))
    return ContentScan(tuple(_scan_block(i, b, options, limits) for i, b in enumerate(content)))


def scan_messages(
    messages: Iterable[Any],
    options: ScanOptions = DEFAULT_OPTIONS,
    *,
    extractors: Mapping[str, Extractor] | None = None,
) -> list[ContentScan]:
    """Scan a list of messages (dicts with ``content`` or objects with a ``content``
    attribute, such as LangChain ``BaseMessage``), one ``ContentScan`` per message."""
    scans = []
    for message in messages:
        if isinstance(message, Mapping):
            content = message.get("content", "")
        else:
            content = getattr(message, "content", "")
        content = content if content is not None else ""
        scans.append(scan_content(content, options, extractors=extractors))
    return scans
