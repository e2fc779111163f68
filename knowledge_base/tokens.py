"""Code-aware tokens: identifiers kept whole and also split into their words.

`parseHTTPResponse` gives `parsehttpresponse parse http response`; `max_line_len` gives
`max_line_len max line len`; `src/pkg/io.py` gives `src pkg io py`. Queries and documents go
through the same function, so an issue that says "the HTTP response parser" meets code that
says `parseHTTPResponse`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+")
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")

# Words too common in prose and code to tell files apart. Language keywords are here because
# every file of a language has them; identifiers that merely contain them are kept.
_STOPWORD_TEXT = """
a an and are as at be been but by can could do does for from has have how i if in into is it
its me my no not of on or our should so than that the their them then there these this to
was we were what when where which while who will with would you your
def self return import none true false class elif else try except finally pass raise yield
lambda global nonlocal assert del async await function var let const new null undefined
public private protected static void int func package fn pub mut impl use mod struct
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
MAX_TOKEN_CHARS = 64


def split_identifier(identifier: str) -> list[str]:
    """The words of an identifier: camelCase, PascalCase, snake_case and digits."""
    return _WORD.findall(identifier)


def iter_tokens(text: str) -> Iterator[str]:
    """Lower-cased tokens of `text`: each identifier whole, then its words if it has several."""
    for match in IDENTIFIER.finditer(text):
        identifier = match.group()
        lowered = identifier.lower()
        if len(lowered) > MAX_TOKEN_CHARS:
            continue
        if len(lowered) > 1 and lowered not in STOPWORDS:
            yield lowered
        words = split_identifier(identifier)
        if len(words) > 1:
            for word in words:
                low = word.lower()
                if len(low) > 1 and low not in STOPWORDS:
                    yield low


def tokens(text: str) -> list[str]:
    return list(iter_tokens(text))


def path_tokens(path: str) -> list[str]:
    """Tokens of a repo path: directories, file stem and extension, each split like code."""
    return tokens(re.sub(r"[/._\-]+", " ", path))
