"""Heading-aware chunker: sections → chunks of at most ``size`` embedding-model tokens.

Chunks never cross a section (so every chunk has one heading path and one page); inside a
section they are packed from whole sentences (English ``.!?`` and Chinese ``。！？``
boundaries, paragraph breaks), with up to ``overlap`` tokens of trailing sentences repeated
at the start of the next chunk. A sentence longer than ``size`` is cut at token offsets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import regex

from kb.embedding import get_tokenizer
from kb.embedding import token_lengths as embedding_token_lengths
from kb.parsing.sections import Section

# A sentence ends after its punctuation and any closing quotes or brackets (they stay with it: a split only
# ever removes whitespace), or at a paragraph break. `regex` for the variable-length lookbehinds.
SENTENCE_END = regex.compile(r"(?<=[.!?;][\"')\]]*)\s+|(?<=[。！？；][”’」』）]*)(?![”’」』）])\s*|\n\s*\n+")


@dataclass(frozen=True)
class ChunkDraft:
    text: str
    heading_path: tuple[str, ...]
    page: int | None
    token_count: int


TokenLengths = Callable[[list[str]], list[int]]


def split_sentences(text: str) -> list[str]:
    """Sentences (and paragraphs) of English or Chinese text, whitespace kept inside them."""
    return [part.strip() for part in SENTENCE_END.split(text) if part and part.strip()]


def chunk_sections(
    sections: Iterable[Section], *, size: int, overlap: int, token_lengths: TokenLengths | None = None,
    split_long: Callable[[str, int], list[str]] | None = None,
) -> list[ChunkDraft]:
    """Chunk each section separately; token counts come from the embedding tokenizer by default."""
    if size <= 0 or overlap < 0 or overlap >= size:
        raise ValueError(f"chunk size {size} and overlap {overlap}: need 0 <= overlap < size")
    if token_lengths is None:
        token_lengths = embedding_token_lengths
    split_long = split_long or split_by_tokens
    drafts: list[ChunkDraft] = []
    for section in sections:
        drafts.extend(chunk_section(section, size, overlap, token_lengths, split_long))
    return drafts


def chunk_section(section: Section, size: int, overlap: int, token_lengths: TokenLengths,
                  split_long) -> list[ChunkDraft]:
    sentences = split_sentences(section.text)
    lengths = token_lengths(sentences)
    pieces: list[tuple[str, int]] = []
    for sentence, length in zip(sentences, lengths, strict=True):
        if length <= size:
            pieces.append((sentence, length))
            continue
        parts = split_long(sentence, size)
        pieces.extend(zip(parts, token_lengths(parts), strict=True))
    return [
        ChunkDraft(text=text, heading_path=section.heading_path, page=section.page, token_count=count)
        for text, count in pack(pieces, size, overlap)
    ]


def pack(pieces: list[tuple[str, int]], size: int, overlap: int) -> list[tuple[str, int]]:
    """Greedy packing of sentences into windows; the tail of each window (≤ overlap) starts the next."""
    chunks: list[tuple[str, int]] = []
    window: list[tuple[str, int]] = []
    fresh = 0  # sentences in the window that no earlier chunk has emitted
    for piece in pieces:
        if window and total(window) + piece[1] > size:
            chunks.append(joined(window))
            window = overlap_tail(window, overlap, size - piece[1])
            fresh = 0
        window.append(piece)
        fresh += 1
    if window and fresh:
        chunks.append(joined(window))
    return chunks


def overlap_tail(window: list[tuple[str, int]], overlap: int, room: int) -> list[tuple[str, int]]:
    tail: list[tuple[str, int]] = []
    for piece in reversed(window):
        if total(tail) + piece[1] > min(overlap, room):
            break
        tail.insert(0, piece)
    return tail


def total(window: list[tuple[str, int]]) -> int:
    return sum(count for _, count in window)


def joined(window: list[tuple[str, int]]) -> tuple[str, int]:
    separator = "" if all(is_cjk_text(text) for text, _ in window) else " "
    return separator.join(text for text, _ in window), total(window)


def is_cjk_text(text: str) -> bool:
    return bool(text) and "\u4e00" <= text[-1] <= "\u9fff" or text.endswith(("。", "！", "？", "；"))


def split_by_tokens(text: str, size: int, *, model: str | None = None) -> list[str]:
    """Cut an over-long sentence at the embedding tokenizer's offsets (``model``'s), ``size`` tokens a piece."""
    offsets = get_tokenizer(model)(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    parts = []
    for start in range(0, len(offsets), size):
        window = offsets[start:start + size]
        parts.append(text[window[0][0]:window[-1][1]].strip())
    return [part for part in parts if part]
