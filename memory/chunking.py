"""Splitting extracted pages into overlapping passages of a bounded, token-ish size.

Sizes are counted in approximate tokens (words and punctuation marks, about what a
WordPiece/BPE tokenizer yields for English), because the embedding model truncates at a
token limit (all-MiniLM-L6-v2: 256) and a passage longer than that would be embedded only
in part. Chunks follow the text's structure: they end at paragraph boundaries when they
can, at sentence boundaries otherwise, and only a sentence longer than a chunk is cut
between words. Consecutive chunks share ``overlap`` tokens (whole trailing sentences where
possible) so that a fact straddling a boundary is found whole in one of them. Chunks never
span pages, so each has exactly one page number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from memory.extract import Page

DEFAULT_MAX_TOKENS = 180
DEFAULT_OVERLAP_TOKENS = 30

_TOKEN = re.compile(r"\w+|[^\w\s]")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n")


def count_tokens(text: str) -> int:
    """Approximate tokens: words and punctuation marks."""
    return len(_TOKEN.findall(text))


@dataclass(frozen=True, slots=True)
class Chunk:
    seq: int
    page: int | None
    text: str
    token_count: int


@dataclass(frozen=True, slots=True)
class _Piece:
    text: str
    tokens: int
    paragraph: int


def _pieces(text: str, max_tokens: int) -> list[_Piece]:
    """Sentences (or word windows of over-long sentences), tagged with their paragraph."""
    pieces: list[_Piece] = []
    for paragraph, block in enumerate(_PARAGRAPH_BREAK.split(text)):
        for sentence in _SENTENCE_END.split(block):
            sentence = " ".join(sentence.split())
            if not sentence:
                continue
            tokens = count_tokens(sentence)
            if tokens <= max_tokens:
                pieces.append(_Piece(sentence, tokens, paragraph))
                continue
            words = sentence.split(" ")
            window: list[str] = []
            window_tokens = 0
            for word in words:
                word_tokens = count_tokens(word)
                if window and window_tokens + word_tokens > max_tokens:
                    pieces.append(_Piece(" ".join(window), window_tokens, paragraph))
                    window, window_tokens = [], 0
                window.append(word)
                window_tokens += word_tokens
            if window:
                pieces.append(_Piece(" ".join(window), window_tokens, paragraph))
    return pieces


def _join(pieces: list[_Piece]) -> str:
    parts: list[str] = []
    for index, piece in enumerate(pieces):
        if index:
            parts.append("\n\n" if piece.paragraph != pieces[index - 1].paragraph else " ")
        parts.append(piece.text)
    return "".join(parts)


def _overlap_tail(pieces: list[_Piece], overlap: int) -> list[_Piece]:
    """The trailing whole pieces of a chunk within ``overlap`` tokens; if even the last
    piece is longer, its last words."""
    if overlap <= 0 or not pieces:
        return []
    tail: list[_Piece] = []
    total = 0
    for piece in reversed(pieces):
        if total + piece.tokens > overlap:
            break
        tail.insert(0, piece)
        total += piece.tokens
    if tail:
        return tail
    last = pieces[-1]
    words: list[str] = []
    for word in reversed(last.text.split(" ")):
        total += count_tokens(word)
        if total > overlap:
            break
        words.insert(0, word)
    return [_Piece(" ".join(words), count_tokens(" ".join(words)), last.paragraph)] if words else []


def chunk_text(
    text: str,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap: int = DEFAULT_OVERLAP_TOKENS,
) -> list[str]:
    """Passages of at most ``max_tokens`` (approximate) tokens with ``overlap`` in common.

    Raises:
        ValueError: ``max_tokens`` < 8 or ``overlap`` not in ``[0, max_tokens // 2]``.
    """
    if max_tokens < 8:
        raise ValueError(f"max_tokens must be at least 8, got {max_tokens}")
    if not 0 <= overlap <= max_tokens // 2:
        raise ValueError(f"overlap must be between 0 and max_tokens // 2, got {overlap}")
    chunks: list[str] = []
    current: list[_Piece] = []
    fresh = 0  # tokens in ``current`` that are not overlap from the previous chunk
    total = 0
    pieces = _pieces(text, max_tokens)
    paragraph_tokens: dict[int, int] = {}
    for piece in pieces:
        paragraph_tokens[piece.paragraph] = paragraph_tokens.get(piece.paragraph, 0) + piece.tokens
    for index, piece in enumerate(pieces):
        starts_paragraph = index > 0 and pieces[index - 1].paragraph != piece.paragraph
        overflow = total + piece.tokens > max_tokens
        # Prefer ending at a paragraph boundary once the chunk is half full and the next
        # paragraph would not fit whole.
        early = (
            starts_paragraph
            and total >= max_tokens // 2
            and total + paragraph_tokens[piece.paragraph] > max_tokens
        )
        if fresh and (overflow or early):
            chunks.append(_join(current))
            current = _overlap_tail(current, overlap)
            total = sum(p.tokens for p in current)
            while current and total + piece.tokens > max_tokens:
                total -= current.pop(0).tokens
            fresh = 0
        current.append(piece)
        total += piece.tokens
        fresh += piece.tokens
    if fresh:
        chunks.append(_join(current))
    return chunks


def chunk_pages(
    pages: Iterable[Page],
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap: int = DEFAULT_OVERLAP_TOKENS,
) -> list[Chunk]:
    """Chunks of every page in order, numbered from 0, each carrying its page number."""
    chunks: list[Chunk] = []
    for page in pages:
        for text in chunk_text(page.text, max_tokens=max_tokens, overlap=overlap):
            chunks.append(Chunk(len(chunks), page.number, text, count_tokens(text)))
    return chunks
