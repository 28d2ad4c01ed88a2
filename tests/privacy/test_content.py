"""privacy/content.py: LangChain-style message content with inline base64 files."""

from __future__ import annotations

import base64
from types import SimpleNamespace

from privacy import BlockStatus, EntityType, Sensitivity, scan_content, scan_messages

NOTE = "# Patient\n\nSøren Jensen, CPR 010190-1234, har sukkersyge.\n"


def _v0(kind: str, mime_type: str, data: str) -> dict[str, str]:
    return {"type": kind, "source_type": "base64", "mime_type": mime_type, "data": data}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def test_plain_string_content() -> None:
    scan = scan_content("mail me at ann@example.com")
    assert scan.sensitivity is Sensitivity.PERSONAL
    assert scan.unscanned == ()


def test_base64_markdown_file_block_is_decoded_and_scanned() -> None:
    scan = scan_content(
        [
            {"type": "text", "text": "See the attached note"},
            {
                "type": "file",
                "source_type": "base64",
                "mime_type": "text/markdown",
                "data": _b64(NOTE),
                "metadata": {"filename": "note.md"},
            },
        ]
    )
    text_block, file_block = scan.blocks
    assert text_block.findings == ()
    assert file_block.status is BlockStatus.SCANNED
    types = {f.type for f in file_block.findings}
    assert {EntityType.NATIONAL_ID, EntityType.HEALTH, EntityType.PERSON} <= types
    cpr = next(f for f in file_block.findings if f.type is EntityType.NATIONAL_ID)
    assert NOTE[cpr.start : cpr.end] == "010190-1234"  # offsets into the decoded file
    assert scan.sensitivity is Sensitivity.SPECIAL


def test_langchain_v1_and_openai_file_shapes() -> None:
    scan = scan_content(
        [
            {"type": "file", "base64": _b64("DK50 0040 0440 1162 43"), "mime_type": "text/plain"},
            {"type": "file", "file": {"file_data": "data:text/plain;base64," + _b64("10.1.2.3")}},
            {"type": "text-plain", "text": "call +45 32 12 34 56", "mime_type": "text/plain"},
        ]
    )  # fmt: skip
    assert [b.status for b in scan.blocks] == [BlockStatus.SCANNED] * 3
    assert [b.findings[0].type for b in scan.blocks] == [
        EntityType.IBAN,
        EntityType.IP_ADDRESS,
        EntityType.PHONE,
    ]
    assert scan.sensitivity is Sensitivity.FINANCIAL


def test_unreadable_blocks_are_reported_as_unscanned() -> None:
    scan = scan_content(
        [
            _v0("file", "application/pdf", "JVBERi0="),
            _v0("image", "image/png", "iVBORw0="),
            _v0("file", "text/plain", "@@not base64@@"),
            _v0("file", "text/plain", base64.b64encode(b"\xff\xfe\x00bad").decode()),
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        ]
    )  # fmt: skip
    assert [b.status for b in scan.blocks] == [
        BlockStatus.UNSUPPORTED,
        BlockStatus.UNSUPPORTED,
        BlockStatus.INVALID,
        BlockStatus.INVALID,
        BlockStatus.UNSUPPORTED,
    ]
    assert len(scan.unscanned) == 5
    assert all(b.error for b in scan.unscanned)
    assert scan.sensitivity is Sensitivity.NONE  # nothing read: the caller must hold it


def test_oversized_block_is_not_decoded() -> None:
    block = {"type": "file", "base64": _b64("x" * 4000), "mime_type": "text/plain"}
    [result] = scan_content([block], max_decoded_bytes=1000).blocks
    assert result.status is BlockStatus.TOO_LARGE


def test_scan_messages_accepts_dicts_and_message_objects() -> None:
    scans = scan_messages(
        [
            {"role": "user", "content": "ann@example.com"},
            SimpleNamespace(content=[{"type": "text", "text": "Jeg er muslim."}]),
            {"role": "assistant", "content": None},
        ]
    )
    assert [s.sensitivity for s in scans] == [
        Sensitivity.PERSONAL,
        Sensitivity.SPECIAL,
        Sensitivity.NONE,
    ]


def test_caller_supplied_extractor_reads_other_file_types() -> None:
    # Stands in for PDF/DOCX extraction, which lives with document ingestion: a real function
    # over the file's bytes, here a tiny "key=value" format.
    def extract_kv(raw: bytes) -> str:
        if not raw.startswith(b"KV1\n"):
            raise ValueError("missing KV1 header")
        return raw[4:].decode("utf-8").replace("=", ": ")

    extractors = {"application/x-kv": extract_kv}
    good = base64.b64encode(b"KV1\nemail=ann@example.com").decode()
    bad = base64.b64encode(b"garbage").decode()
    scan = scan_content(
        [_v0("file", "application/x-kv", good), _v0("file", "application/x-kv", bad)],
        extractors=extractors,
    )
    ok, corrupt = scan.blocks
    assert ok.status is BlockStatus.SCANNED
    assert [(f.type, f.text, f.start) for f in ok.findings] == [
        (EntityType.EMAIL, "ann@example.com", 7)
    ]
    assert corrupt.status is BlockStatus.INVALID
    assert corrupt.error is not None and "missing KV1 header" in corrupt.error
