"""Split a file into chunks of whole lines that start at definitions where possible.

A chunk is the unit of lexical and semantic search and of a search hit's line range. Cutting
at definition starts keeps a function's name, signature and body together, which is what
both BM25 and an embedding model need to recognise it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_LINES = 12
MAX_LINES = 60
MAX_CHUNK_CHARS = 6_000  # one very long line must not make a chunk unbounded
_HEADING = re.compile(r"^(#{1,6} |[=\-~^]{3,}\s*$)")


@dataclass(frozen=True, slots=True)
class Chunk:
    start_line: int  # 1-based, inclusive
    end_line: int
    text: str
    symbol: str | None  # the first definition that starts in the chunk, for display


def heading_lines(lines: list[str]) -> list[int]:
    """1-based lines where a Markdown or reStructuredText section starts."""
    starts = []
    for number, line in enumerate(lines, start=1):
        if _HEADING.match(line):
            # An RST underline belongs to the title on the line above it.
            starts.append(number - 1 if line[:1] in "=-~^" and number > 1 else number)
    return starts


def chunk_lines(lines: list[str], boundaries: dict[int, str | None]) -> list[Chunk]:
    """Chunks of `lines`; `boundaries` maps preferred 1-based start lines to a symbol name."""
    chunks: list[Chunk] = []
    start = 1
    total = len(lines)
    while start <= total:
        end = _chunk_end(start, total, boundaries)
        text = "".join(lines[start - 1 : end])[:MAX_CHUNK_CHARS]
        symbol = next((boundaries[n] for n in range(start, end + 1) if boundaries.get(n)), None)
        chunks.append(Chunk(start, end, text, symbol))
        start = end + 1
    return chunks


def _chunk_end(start: int, total: int, boundaries: dict[int, str | None]) -> int:
    limit = min(total, start + MAX_LINES - 1)
    for line in range(start + MIN_LINES, limit + 1):
        if line in boundaries:
            return line - 1
    return limit
