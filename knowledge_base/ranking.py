"""Fuse the per-signal evidence into one ranking of files: weighted reciprocal rank fusion.

RRF needs no score calibration between BM25, symbol weights and cosine similarities, which
live on unrelated scales; each signal only contributes by the rank it gives a file. Test
files are demoted unless the query is about tests, and docs, examples and config unless it is
about docs: a change is usually asked of the code, and those files mention the same names as
the code they describe.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from knowledge_base.filters import is_secondary_path, is_test_path

SIGNALS = ("lexical", "file", "symbol", "path", "semantic")


@dataclass(frozen=True)
class Weights:
    rrf_k: float = 10.0
    lexical: float = 1.0
    file: float = 0.5
    symbol: float = 1.0
    path: float = 1.5
    semantic: float = 0.7
    test_factor: float = 0.4  # multiplies a test file's score when the query is not about tests
    secondary_factor: float = 0.5  # the same for docs, examples and config unless the query is about docs

    def of(self, signal: str) -> float:
        return float(getattr(self, signal))


@dataclass
class RankedFile:
    path: str
    score: float
    signals: dict[str, int] = field(default_factory=dict)  # signal -> the rank it gave this file (1 = best)


def fuse(
    per_signal: dict[str, dict[str, float]], weights: Weights, wants_tests: bool, wants_docs: bool
) -> list[RankedFile]:
    files: dict[str, RankedFile] = {}
    for signal, scores in per_signal.items():
        weight = weights.of(signal)
        ordered = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
        for rank, (path, _score) in enumerate(ordered, start=1):
            entry = files.setdefault(path, RankedFile(path, 0.0))
            entry.score += weight / (weights.rrf_k + rank)
            entry.signals[signal] = rank
    for entry in files.values():
        if not wants_tests and is_test_path(entry.path):
            entry.score *= weights.test_factor
        elif not wants_docs and is_secondary_path(entry.path):
            entry.score *= weights.secondary_factor
    return sorted(files.values(), key=lambda f: (-f.score, f.path))
