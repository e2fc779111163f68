"""Turn one file's bytes into what the index stores: symbols, chunks and their tokens."""

from __future__ import annotations

from dataclasses import dataclass

from knowledge_base.chunking import Chunk, chunk_lines, heading_lines
from knowledge_base.filters import DOC_LANGUAGES, decode, skip_reason_for_content
from knowledge_base.symbol_model import Symbol
from knowledge_base.symbols_python import extract_python_symbols
from knowledge_base.tokens import tokens

_CHUNK_KINDS = frozenset({"class", "function", "method", "interface", "struct", "enum", "trait", "module", "type"})


@dataclass(frozen=True, slots=True)
class ParsedFile:
    lines: int
    skipped: str | None
    symbols: list[Symbol]
    chunks: list[Chunk]
    chunk_tokens: list[str]  # space-joined tokens per chunk, for FTS5


def extract_symbols(language: str | None, data: bytes, text: str) -> list[Symbol]:
    if language == "python":
        return extract_python_symbols(text)
    if language in {"javascript", "typescript", "tsx", "go", "java", "rust"}:
        from knowledge_base.symbols_treesitter import extract_symbols as extract_with_tree_sitter

        return extract_with_tree_sitter(language, data)
    return []


def parse_file(language: str | None, data: bytes) -> ParsedFile:
    skipped = skip_reason_for_content(data)
    if skipped:
        return ParsedFile(0, skipped, [], [], [])
    text = decode(data)
    lines = text.splitlines(keepends=True)
    symbols = extract_symbols(language, data, text)
    boundaries: dict[int, str | None] = {}
    if language in DOC_LANGUAGES:
        boundaries = dict.fromkeys(heading_lines(lines))
    for symbol in symbols:
        if symbol.is_definition and symbol.kind in _CHUNK_KINDS:
            boundaries.setdefault(symbol.line, symbol.name)
    chunks = chunk_lines(lines, boundaries)
    chunk_tokens = [" ".join(tokens(chunk.text)) for chunk in chunks]
    return ParsedFile(len(lines), None, symbols, chunks, chunk_tokens)
