"""Errors of the knowledge base.

KnowledgeBaseError
├── EmptyRepository   the repository has no commit to index yet
├── InvalidQuery      empty query, unknown kind, bad glob (the caller can fix it)
└── IndexUnavailable  the index files are unreadable or locked past the timeout
"""

from __future__ import annotations


class KnowledgeBaseError(Exception):
    """Base class; `str()` is a one-line message a user or model can act on."""


class EmptyRepository(KnowledgeBaseError):
    pass


class InvalidQuery(KnowledgeBaseError):
    pass


class IndexUnavailable(KnowledgeBaseError):
    pass
