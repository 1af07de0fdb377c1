"""Split a document into retrieval chunks that follow its headings and never cut a sentence in two.

A chunk stays within one section (the heading path travels with it), holds whole sentences up to `max_words`, and
repeats the previous chunk's last sentence so an answer spanning the boundary is still found in one piece.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_WORDS = 160  # all-MiniLM-L6-v2 reads 256 word pieces; 160 words stay inside that for ordinary prose
_HEADING = re.compile(r"^(#{1,6}) +(.+?) *#*$")
# A sentence ends at . ! ? (optionally followed by a closing quote or bracket) before whitespace and an opening capital,
# digit or quote; abbreviations like "e.g. the" are left alone because a lowercase word follows.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[A-Z0-9\"'(\[])")


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    heading: str | None
    text: str


def sentences(paragraph: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(paragraph.replace("\n", " ")) if s.strip()]


def _sections(text: str) -> list[tuple[str | None, list[str]]]:
    """(heading path, paragraphs) per section, in order."""
    path: list[tuple[int, str]] = []
    sections: list[tuple[str | None, list[str]]] = [(None, [])]
    for block in re.split(r"\n\s*\n", text):
        lines = block.strip().split("\n")
        body: list[str] = []
        for line in lines:
            match = _HEADING.match(line.strip())
            if match:
                if body:
                    sections[-1][1].append(" ".join(body))
                    body = []
                level = len(match[1])
                path = [(lvl, name) for lvl, name in path if lvl < level] + [(level, match[2])]
                sections.append((" > ".join(name for _, name in path), []))
            elif line.strip():
                body.append(line.strip())
        if body:
            sections[-1][1].append(" ".join(body))
    return [(heading, paragraphs) for heading, paragraphs in sections if paragraphs]


def _split_long(sentence: str, max_words: int) -> list[str]:
    words = sentence.split()
    return [" ".join(words[i : i + max_words]) for i in range(0, len(words), max_words)]


def chunk_text(text: str, *, max_words: int = MAX_WORDS) -> list[Chunk]:
    chunks: list[Chunk] = []
    for heading, paragraphs in _sections(text):
        units = [piece for paragraph in paragraphs for s in sentences(paragraph) for piece in _split_long(s, max_words)]
        current: list[str] = []
        words = 0
        for unit in units:
            size = len(unit.split())
            if current and words + size > max_words:
                chunks.append(Chunk(ordinal=len(chunks), heading=heading, text=" ".join(current)))
                carry = current[-1] if len(current) > 1 and len(current[-1].split()) + size <= max_words else None
                current, words = ([carry], len(carry.split())) if carry else ([], 0)
            current.append(unit)
            words += size
        if current:
            chunks.append(Chunk(ordinal=len(chunks), heading=heading, text=" ".join(current)))
    return chunks
