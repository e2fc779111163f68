"""Semantic search: the index's chunks embedded into a persistent chromadb collection.

The collection is keyed by the embedder's name, so switching models never mixes vectors. Ids
are the chunk ids of the code index; `sync` embeds the chunks that are new and deletes the ones
whose blob left the tree, so a commit costs only its changed chunks.

Embedding a large repository on a CPU takes minutes, so the collection is built on request
(`shipway index`, or the server's start-up indexer); once built, every query keeps it current.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from knowledge_base.embedders import Embedder, EmbedderUnavailable
from knowledge_base.store import IndexDatabase

_BATCH = 128
_EMBED_CHARS = 2_000  # the model reads ~256 tokens; the rest would be cut anyway


class ChromaVectorIndex:
    def __init__(self, directory: Path, embedder: Embedder | None, unavailable: str | None = None) -> None:
        self.directory = directory
        self.embedder = embedder
        self._unavailable = unavailable if embedder is None else None
        self._collection: Any = None
        self._guard = threading.Lock()

    def unavailable_reason(self) -> str | None:
        return "no embedder is configured" if self.embedder is None and not self._unavailable else self._unavailable

    def is_built(self) -> bool:
        """Whether `sync` has run at least once for this embedder (the marker is written last)."""
        return self.embedder is not None and (self.directory / f"{self._collection_name()}.built").exists()

    def sync(self, db: IndexDatabase) -> int:
        """Embed new chunks and drop removed ones; returns how many chunks were embedded."""
        if self.embedder is None:
            return 0
        collection = self._open()
        with db.read() as conn:
            rows = conn.execute(
                "SELECT c.id, MIN(f.path), c.symbol, c.text FROM chunks c JOIN files f ON f.blob = c.blob "
                "WHERE f.skipped IS NULL GROUP BY c.id"
            ).fetchall()
        wanted = {str(cid): (path, symbol, text) for cid, path, symbol, text in rows}
        present = set(collection.get(include=[])["ids"])
        stale = sorted(present - wanted.keys())
        if stale:
            collection.delete(ids=stale)
        missing = sorted(wanted.keys() - present, key=int)
        for start in range(0, len(missing), _BATCH):
            ids = missing[start : start + _BATCH]
            texts = [_embedding_text(*wanted[i]) for i in ids]
            try:
                vectors = self.embedder.embed_documents(texts)
            except EmbedderUnavailable as exc:
                self._unavailable = str(exc)
                raise
            collection.add(ids=ids, embeddings=vectors)
        (self.directory / f"{self._collection_name()}.built").touch()
        return len(missing)

    def query(self, text: str, limit: int) -> list[tuple[int, float]]:
        if self.embedder is None:
            return []
        collection = self._open()
        count = collection.count()
        if count == 0:
            return []
        vector = self.embedder.embed_query(text[:_EMBED_CHARS])
        found = collection.query(query_embeddings=[vector], n_results=min(limit, count), include=["distances"])
        return [(int(i), 1.0 - float(d)) for i, d in zip(found["ids"][0], found["distances"][0], strict=True)]

    def _collection_name(self) -> str:
        assert self.embedder is not None
        return "chunks-" + re.sub(r"[^A-Za-z0-9_-]+", "-", self.embedder.name)[:60]

    def _open(self) -> Any:
        with self._guard:
            if self._collection is None:
                import chromadb
                from chromadb.config import Settings

                client = chromadb.PersistentClient(
                    path=str(self.directory / "chroma"), settings=Settings(anonymized_telemetry=False)
                )
                self._collection = client.get_or_create_collection(
                    self._collection_name(), metadata={"hnsw:space": "cosine"}, embedding_function=None
                )
            return self._collection


def _embedding_text(path: str, symbol: str | None, text: str) -> str:
    # The path and the definition name carry much of a chunk's meaning for a short model.
    header = f"{path} {symbol}" if symbol else path
    return f"{header}\n{text}"[:_EMBED_CHARS]
