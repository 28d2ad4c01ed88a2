"""PII and special-category detection, sensitivity, redaction: pure functions, no I/O.

``scan_text`` finds e-mail addresses, phone numbers, IBANs, payment cards, national identifiers,
IP and postal addresses, person names and GDPR Art. 9 special categories (English and Danish),
and grades the text ``none | personal | financial | special``. ``scan_content`` does the same
for LangChain-style message content with inline base64 files. ``pseudonymise``/``restore`` and
``redact`` minimise what leaves our boundary.
"""

from privacy.content import (
    BlockScan,
    BlockStatus,
    ContentScan,
    Extractor,
    scan_content,
    scan_messages,
)
from privacy.redaction import PseudonymMap, pseudonymise, redact, restore
from privacy.scanner import DEFAULT_OPTIONS, ScanOptions, resolve_overlaps, scan_text
from privacy.types import EntityType, Finding, ScanResult, Sensitivity, sensitivity_of

__all__ = [
    "DEFAULT_OPTIONS",
    "BlockScan",
    "BlockStatus",
    "ContentScan",
    "EntityType",
    "Extractor",
    "Finding",
    "PseudonymMap",
    "ScanOptions",
    "ScanResult",
    "Sensitivity",
    "pseudonymise",
    "redact",
    "resolve_overlaps",
    "restore",
    "scan_content",
    "scan_messages",
    "scan_text",
    "sensitivity_of",
]
