"""What a search query says: words, code identifiers, file paths and stack-trace frames.

Queries are often whole issue texts: prose, code blocks, tracebacks. Each part is a different
signal for ranking, so they are pulled apart here once.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from knowledge_base.errors import InvalidQuery
from knowledge_base.tokens import STOPWORDS, iter_tokens

MAX_QUERY_CHARS = 16_000
MAX_QUERY_TERMS = 128  # FTS5 query terms; the rarest are kept (they carry the signal, and each costs time)

_PATHLIKE = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-]+\.(?:py|pyi|js|jsx|mjs|ts|tsx|go|java|rs|rb|c|h|cc|cpp))\b")
_DOTTED = re.compile(r"\b([A-Za-z_]\w*(?:\.[A-Za-z_]\w*){1,6})\b")
_PY_FRAME = re.compile(r'File "([^"]+)", line (\d+)')
_GENERIC_FRAME = re.compile(r"([\w./\\-]+\.(?:py|js|jsx|mjs|ts|tsx|go|java|rs|rb|c|cc|cpp)):(\d+)")
_CODEISH = re.compile(r"[a-z][A-Z]|_|^[A-Z][a-z]+[A-Z]")
_CALLED = re.compile(r"([A-Za-z_]\w*)\s*\(")
_BACKTICKED = re.compile(r"`([^`\n]{1,120})`")
_DOC_WORDS = re.compile(r"\b(docs|documentation|docstrings?|readme|typos?)\b", re.IGNORECASE)
_TEST_WORDS = re.compile(r"\b(tests?|testing|pytest|unittest|spec|fixtures?|conftest)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Query:
    text: str
    truncated: bool
    terms: Counter[str]  # code-aware tokens with their counts
    identifiers: frozenset[str]  # words that look like code: snake_case, camelCase, called, backticked
    words: frozenset[str]  # every identifier-shaped word (for matching definitions by name)
    paths: tuple[str, ...]  # file paths or file names mentioned
    modules: tuple[str, ...]  # dotted names: pkg.module.attr
    frames: tuple[tuple[str, int], ...]  # (path, line) from stack traces
    wants_tests: bool
    wants_docs: bool


def parse_query(text: str) -> Query:
    stripped = text.strip()
    if not stripped:
        raise InvalidQuery("the query is empty: describe the code to find, or paste an error or stack trace")
    truncated = len(stripped) > MAX_QUERY_CHARS
    stripped = stripped[:MAX_QUERY_CHARS]
    words = frozenset(w for w in re.findall(r"[A-Za-z_]\w{2,}", stripped) if w.lower() not in STOPWORDS)
    identifiers = {w for w in words if _CODEISH.search(w)}
    identifiers.update(m for m in _CALLED.findall(stripped) if m.lower() not in STOPWORDS and len(m) > 2)
    for snippet in _BACKTICKED.findall(stripped):
        identifiers.update(w for w in re.findall(r"[A-Za-z_]\w{2,}", snippet) if w.lower() not in STOPWORDS)
    frames = tuple(dict.fromkeys(_frames(stripped)))
    return Query(
        text=stripped,
        truncated=truncated,
        terms=Counter(iter_tokens(stripped)),
        identifiers=frozenset(identifiers),
        words=words,
        paths=tuple(dict.fromkeys(m.replace("\\", "/") for m in _PATHLIKE.findall(stripped))),
        modules=tuple(dict.fromkeys(m for m in _DOTTED.findall(stripped) if not _looks_like_filename(m))),
        frames=frames,
        wants_tests=bool(_TEST_WORDS.search(stripped)),
        wants_docs=bool(_DOC_WORDS.search(stripped)),
    )


def _frames(text: str) -> list[tuple[str, int]]:
    found = [(path, int(line)) for path, line in _PY_FRAME.findall(text)]
    found += [(path.replace("\\", "/"), int(line)) for path, line in _GENERIC_FRAME.findall(text)]
    return found


def _looks_like_filename(dotted: str) -> bool:
    return dotted.rsplit(".", 1)[-1] in {"py", "js", "ts", "go", "rs", "java", "md", "txt", "json", "toml", "cfg"}


def fts_expression(terms: Counter[str], document_frequency: dict[str, int]) -> str | None:
    """An FTS5 OR-query of the query's terms that occur in the index, rarest first, capped."""
    present = [t for t in terms if document_frequency.get(t, 0) > 0]
    present.sort(key=lambda t: (document_frequency[t], t))
    kept = present[:MAX_QUERY_TERMS]
    if not kept:
        return None
    return " OR ".join(f'"{t}"' for t in kept)
