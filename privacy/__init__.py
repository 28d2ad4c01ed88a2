"""PII and special-category detection, sensitivity, redaction: pure functions, no I/O."""
