"""Align a hunk's old side to a file when the lines are not there as one contiguous block.

A semi-global alignment (free start and end in the file, every hunk line accounted for):
a hunk line either matches a file line with the same key, or is missing from the file
(allowed for context lines only, never for lines the hunk removes); file lines the hunk
does not show may be skipped between two hunk lines (an affine gap: context the model
dropped, or two hunks written as one). Matches of rare lines weigh more than matches of
`}` or blank lines.

The dynamic programme runs one numpy vector per hunk line over all file lines, so a
5,000-line file and a 40-line hunk cost a few milliseconds. `locate` decides whether the
best alignment is good and unambiguous enough to apply.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

GAP_OPEN = 0.5
GAP_EXTEND = 0.002
MISSING_CONTEXT = 0.5
MISSING_BLANK = 0.02
BLANK_WEIGHT = 0.1
MIN_WEIGHT = 0.15
_NEG = -1e18

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Alignment:
    score: float
    start: int  # first file line the alignment spans
    end: int  # one past the last matched file line
    pairs: tuple[int | None, ...]  # per old-side hunk line: its file line, or None if missing


def line_weights(old_keys: Sequence[str], file_keys: Sequence[str]) -> list[float]:
    """How much matching each hunk line is worth: rare lines are strong evidence, common ones weak."""
    counts = Counter(file_keys)
    return [BLANK_WEIGHT if not key else max(MIN_WEIGHT, 1.0 / max(1, counts[key]) ** 0.5) for key in old_keys]


def align(
    old_keys: Sequence[str], removable: Sequence[bool], file_keys: Sequence[str], weights: Sequence[float]
) -> Alignment | None:
    """The best alignment of `old_keys` into `file_keys`; `removable[k]` marks lines that must match."""
    vocab: dict[str, int] = {}
    file_ids = np.array([vocab.setdefault(key, len(vocab)) for key in file_keys], dtype=np.int64)
    old_ids = [vocab.get(key, -1) for key in old_keys]
    n, m = len(file_keys), len(old_keys)
    if m == 0 or n == 0:
        return None
    positions = np.arange(n + 1, dtype=np.float64) * GAP_EXTEND
    pres: list[FloatArray] = []
    rows: list[FloatArray] = [np.zeros(n + 1)]
    for k in range(m):
        prev = rows[-1]
        diag = np.full(n + 1, _NEG)
        diag[1:] = np.where(file_ids == old_ids[k], prev[:-1] + weights[k], _NEG)
        miss = MISSING_BLANK if not old_keys[k] else MISSING_CONTEXT
        pre = diag if removable[k] else np.maximum(diag, prev - miss)
        pres.append(pre)
        rows.append(_with_gaps(pre, positions) if k < m - 1 else pre)
    end = int(np.argmax(rows[-1]))
    if rows[-1][end] <= _NEG / 2:
        return None
    return _trace(rows, pres, file_ids, old_ids, weights, positions, end)


def _with_gaps(pre: FloatArray, positions: FloatArray) -> FloatArray:
    """Allow skipping file lines after this hunk line: best of `pre[j] - open - extend * (l - j)`, j < l."""
    lifted = pre + positions
    best_before = np.empty_like(lifted)
    best_before[0] = _NEG
    best_before[1:] = np.maximum.accumulate(lifted)[:-1]
    return np.maximum(pre, best_before - positions - GAP_OPEN)


def _trace(
    rows: list[FloatArray],
    pres: list[FloatArray],
    file_ids: npt.NDArray[np.int64],
    old_ids: list[int],
    weights: Sequence[float],
    positions: FloatArray,
    end: int,
) -> Alignment:
    pairs: list[int | None] = [None] * len(old_ids)
    col = end
    last_match = end
    for k in range(len(old_ids), 0, -1):
        if rows[k][col] > pres[k - 1][col] + 1e-9:  # arrived through skipped file lines
            col = int(np.argmax(pres[k - 1][:col] + positions[:col]))
        expected = rows[k - 1][col - 1] + weights[k - 1] if col > 0 else _NEG
        if col > 0 and file_ids[col - 1] == old_ids[k - 1] and abs(pres[k - 1][col] - expected) < 1e-9:
            pairs[k - 1] = col - 1
            col -= 1
    matched = [p for p in pairs if p is not None]
    if matched:
        last_match = max(matched) + 1
    return Alignment(float(rows[-1][end]), col, last_match, tuple(pairs))
