"""What an upload is (sniffed from its bytes) and its text, page by page.

The type comes from the content: ``%PDF-`` is a PDF, a ZIP holding ``word/document.xml`` is
DOCX, UTF-8 without NUL bytes is text. The file name and declared MIME type only choose
between text kinds (plain, Markdown, HTML), and a name or declaration that claims a binary
format the bytes are not (``report.pdf`` that is text) is refused, as are other binaries.
``inspect`` is cheap enough for a request handler (it parses structure, not text);
``extract`` does the full work in a background job.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import PurePath

from memory.document_types import (
    MIME_DOCX,
    MIME_HTML,
    MIME_MARKDOWN,
    MIME_PDF,
    MIME_TEXT,
    SUPPORTED_TYPES,
    DocumentRejectedError,
)

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
_EXTENSIONS = {
    ".txt": MIME_TEXT,
    ".text": MIME_TEXT,
    ".md": MIME_MARKDOWN,
    ".markdown": MIME_MARKDOWN,
    ".html": MIME_HTML,
    ".htm": MIME_HTML,
    ".pdf": MIME_PDF,
    ".docx": MIME_DOCX,
}
_DECLARED_ALIASES = {"text/x-markdown": MIME_MARKDOWN, "application/xhtml+xml": MIME_HTML}
_BINARY_TYPES = (MIME_PDF, MIME_DOCX)
_HTML_START = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>])", re.I | re.S)
_SUPPORTED_NAMES = "text, Markdown, HTML, PDF or DOCX"


@dataclass(frozen=True, slots=True)
class Page:
    """Text of one page (PDF, 1-based ``number``) or of the whole document (``None``)."""

    number: int | None
    text: str


@dataclass(frozen=True, slots=True)
class Extracted:
    mime_type: str
    pages: tuple[Page, ...]

    @property
    def text(self) -> str:
        return "\n\n".join(page.text for page in self.pages)


def _claimed_type(filename: str | None, declared: str | None) -> str | None:
    mime = (declared or "").split(";")[0].strip().lower()
    mime = _DECLARED_ALIASES.get(mime, mime)
    if mime in SUPPORTED_TYPES:
        return mime
    suffix = PurePath(filename or "").suffix.lower()
    return _EXTENSIONS.get(suffix)


def sniff_type(data: bytes, *, filename: str | None = None, declared: str | None = None) -> str:
    """The MIME type of ``data``, judged by its content.

    Raises:
        DocumentRejectedError: ``empty_file``, ``unsupported_type`` (binary that is not a
            PDF or DOCX), ``type_mismatch`` (the name or declared type says PDF/DOCX and the
            bytes are not, or the reverse) or ``not_utf8``.
    """
    name = filename or "upload"
    if not data.strip():
        raise DocumentRejectedError(
            "empty_file", f"{name} is empty", hint="Upload a file with text"
        )
    claimed = _claimed_type(filename, declared)
    if b"%PDF-" in data[:1024]:
        sniffed = MIME_PDF
    elif data.startswith(b"PK\x03\x04"):
        if not _is_docx(data):
            raise DocumentRejectedError(
                "unsupported_type",
                f"{name} is a ZIP archive but not a Word (DOCX) document",
                hint=f"Upload {_SUPPORTED_NAMES}",
            )
        sniffed = MIME_DOCX
    else:
        sniffed = _sniff_text(data, name, claimed)
    if claimed in _BINARY_TYPES and claimed != sniffed:
        raise DocumentRejectedError(
            "type_mismatch",
            f"{name} claims to be {_label(claimed)} but its content is {_label(sniffed)}",
            hint="Upload the real file; the type is judged by the content",
        )
    if sniffed in _BINARY_TYPES and claimed is not None and claimed != sniffed:
        raise DocumentRejectedError(
            "type_mismatch",
            f"{name} claims to be {_label(claimed)} but its content is {_label(sniffed)}",
            hint="Give the file its real extension",
        )
    return sniffed


def _label(mime: str | None) -> str:
    return {
        MIME_PDF: "a PDF",
        MIME_DOCX: "a DOCX document",
        MIME_HTML: "HTML",
        MIME_MARKDOWN: "Markdown",
        MIME_TEXT: "text",
    }.get(mime or "", mime or "unknown")


def _is_docx(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _sniff_text(data: bytes, name: str, claimed: str | None) -> str:
    head = data[:8192]
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DocumentRejectedError(
            "unsupported_type",
            f"{name} is binary data, not {_SUPPORTED_NAMES}",
            hint=f"Upload {_SUPPORTED_NAMES}",
        )
    text = decode_text(data, name)
    if claimed in (MIME_HTML, MIME_MARKDOWN, MIME_TEXT):
        return claimed
    if _HTML_START.match(text[:4096].encode()):
        return MIME_HTML
    return MIME_TEXT


def decode_text(data: bytes, name: str = "upload") -> str:
    """UTF-8 (with or without BOM), or UTF-16 with a BOM.

    Raises:
        DocumentRejectedError: ``not_utf8``, or ``unsupported_type`` for control-character
            noise that happens to decode.
    """
    try:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            text = data.decode("utf-16")
        else:
            text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentRejectedError(
            "not_utf8",
            f"{name} is neither UTF-8 text nor a PDF or DOCX (invalid byte at offset {exc.start})",
            hint="Save the text as UTF-8",
        ) from None
    sample = text[:8192]
    controls = sum(1 for char in sample if ord(char) < 32 and char not in "\n\r\t\f")
    if controls > max(8, len(sample) // 100):
        raise DocumentRejectedError(
            "unsupported_type",
            f"{name} is binary data, not {_SUPPORTED_NAMES}",
            hint=f"Upload {_SUPPORTED_NAMES}",
        )
    return text


def inspect(
    data: bytes,
    *,
    filename: str | None = None,
    declared: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> str:
    """Check an upload before it is queued: size, type, and (PDF, DOCX) that it opens.
    Returns its MIME type.

    Raises:
        DocumentRejectedError: see ``sniff_type``; also ``too_large``, ``corrupt_pdf``,
            ``encrypted_pdf`` and ``corrupt_docx``.
    """
    name = filename or "upload"
    if len(data) > max_bytes:
        raise DocumentRejectedError(
            "too_large",
            f"{name} is larger than the limit of {max_bytes} bytes",
            hint="Split the document or raise the document size limit",
        )
    mime = sniff_type(data, filename=filename, declared=declared)
    if mime == MIME_PDF:
        _open_pdf(data, name)
    elif mime == MIME_DOCX:
        _open_docx(data, name)
    return mime


def _open_pdf(data: bytes, name: str) -> object:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentRejectedError(
                "encrypted_pdf",
                f"{name} is a password-protected PDF",
                hint="Upload an unprotected copy",
            )
        if len(reader.pages) == 0:
            raise DocumentRejectedError("corrupt_pdf", f"{name} is a PDF without pages")
    except DocumentRejectedError:
        raise
    except Exception as exc:  # pypdf raises many types for damaged files
        raise DocumentRejectedError(
            "corrupt_pdf", f"{name} is a damaged PDF: {exc}", hint="Re-export or repair the PDF"
        ) from None
    return reader


def _open_docx(data: bytes, name: str) -> object:
    import docx

    try:
        return docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises KeyError, lxml errors, BadZipFile...
        raise DocumentRejectedError(
            "corrupt_docx", f"{name} is a damaged DOCX document: {exc}", hint="Re-save it in Word"
        ) from None


def extract(data: bytes, mime_type: str, *, filename: str | None = None) -> Extracted:
    """The text of a document ``inspect`` accepted, per page for PDFs.

    Raises:
        DocumentRejectedError: the file is damaged (``corrupt_pdf``, ``corrupt_docx``) or has
            no text (``no_text``, e.g. a scanned PDF without a text layer).
    """
    name = filename or "upload"
    if mime_type == MIME_PDF:
        pages = _pdf_pages(data, name)
    elif mime_type == MIME_DOCX:
        pages = (Page(None, _docx_text(data, name)),)
    elif mime_type == MIME_HTML:
        pages = (Page(None, html_to_text(decode_text(data, name))),)
    elif mime_type in (MIME_TEXT, MIME_MARKDOWN):
        pages = (Page(None, normalise(decode_text(data, name))),)
    else:
        raise DocumentRejectedError("unsupported_type", f"{name}: {mime_type} is not supported")
    pages = tuple(page for page in pages if page.text.strip())
    if not pages:
        raise DocumentRejectedError(
            "no_text",
            f"{name} contains no extractable text",
            hint="A scanned PDF needs OCR before upload",
        )
    return Extracted(mime_type, pages)


def normalise(text: str) -> str:
    """Unix newlines, no trailing spaces, at most one blank line in a row."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = re.sub(r"[ \t\f\v]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _pdf_pages(data: bytes, name: str) -> tuple[Page, ...]:
    reader = _open_pdf(data, name)
    pages = []
    try:
        for number, page in enumerate(reader.pages, start=1):  # type: ignore[attr-defined]
            pages.append(Page(number, normalise(page.extract_text() or "")))
    except Exception as exc:
        raise DocumentRejectedError(
            "corrupt_pdf", f"{name} is a damaged PDF: {exc}", hint="Re-export or repair the PDF"
        ) from None
    return tuple(pages)


def _docx_text(data: bytes, name: str) -> str:
    document = _open_docx(data, name)
    blocks: list[str] = []
    try:
        body = document.element.body  # type: ignore[attr-defined]
        from docx.table import Table
        from docx.text.paragraph import Paragraph

        for child in body.iterchildren():
            tag = child.tag.rsplit("}", 1)[-1]
            if tag == "p":
                blocks.append(Paragraph(child, document).text)  # type: ignore[arg-type]
            elif tag == "tbl":
                for row in Table(child, document).rows:  # type: ignore[arg-type]
                    cells = [cell.text.strip() for cell in row.cells]
                    blocks.append(" | ".join(cell for cell in cells if cell))
    except Exception as exc:
        raise DocumentRejectedError(
            "corrupt_docx", f"{name} is a damaged DOCX document: {exc}", hint="Re-save it in Word"
        ) from None
    return normalise("\n\n".join(block for block in blocks if block.strip()))


_BLOCK_TAGS = (
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
    "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol",
    "p", "pre", "section", "table", "td", "th", "tr", "ul", "title",
)  # fmt: skip


def html_to_text(html: str) -> str:
    """Readable text of an HTML page: scripts, styles and markup gone, blocks kept apart."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "svg", "iframe", "object"]):
        tag.decompose()
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before("\n\n")
        tag.insert_after("\n\n")
    lines = (re.sub(r"[ \t\f\v\xa0]+", " ", line).strip() for line in soup.get_text().split("\n"))
    return normalise("\n".join(lines))
