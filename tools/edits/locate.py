"""Place one hunk in a file: exact, then whitespace- and indentation-insensitive, then aligned.

Every level works on the original file; line numbers only break ties between equally good
places. A placement that needs guessing is accepted only when one reading is clearly best:
two places that match equally well, added lines that could go on either side of lines the
hunk does not show, or too little agreement with the file are refusals, with the reason.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from tools.edits.alignment import Alignment, align, line_weights
from tools.edits.indentation import NO_SHIFT, Shift, common_shift
from tools.edits.patch_parse import Hunk
from tools.edits.text import TextFile, line_key

Method = Literal["exact", "whitespace", "indentation", "fuzzy"]
_RANKS: tuple[Method, ...] = ("exact", "whitespace", "indentation", "fuzzy")
TRAILING_COMMENT = re.compile(r"(^|\s)(#|//|--)(\s.*)?$")
TYPO_RATIO = 0.6
BLANK_STYLE_SHARE = 0.05  # a context line at least this similar to the file's line is the model's misquote of it
MIN_AGREEMENT = 0.5  # share of the hunk's evidence (weighted lines) that must match exactly
AMBIGUITY_MARGIN = 0.75  # a second place scoring within this of the best makes the hunk ambiguous


class HunkFailure(Exception):
    def __init__(self, reason: str, near: tuple[int, int] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.near = near  # file lines [start, end) closest to what the hunk describes


class IndentationMismatch(HunkFailure):
    pass


@dataclass(frozen=True)
class Placement:
    start: int  # the hunk replaces file lines [start, end)
    end: int
    replacement: tuple[tuple[str, str | None], ...]  # (text, line ending or None for the file's usual one)
    method: Method
    notes: tuple[str, ...] = ()
    already_applied: bool = False


class FileLines:
    """A file's lines with their match keys and where each key occurs."""

    def __init__(self, text: TextFile, key: Callable[[str], str] = line_key) -> None:
        self.text = text
        self.key = key
        self.keys = [key(line) for line in text.lines]
        self.where: dict[str, list[int]] = defaultdict(list)
        for i, found in enumerate(self.keys):
            self.where[found].append(i)

    def __len__(self) -> int:
        return len(self.keys)

    def indents_blank_lines(self) -> bool:
        """Whether the file's style keeps whitespace on blank lines (an editor's auto-indent)."""
        blank = [line for line in self.text.lines if not line.strip()]
        return sum(1 for line in blank if line) >= max(1, BLANK_STYLE_SHARE * len(blank))


@dataclass
class _Reading:
    """One interpretation of a hunk against the file: which file line each old-side line is."""

    pairs: list[int | None]
    method: Method
    guessed: set[int] = field(default_factory=set)  # old-side lines treated as added lines
    notes: list[str] = field(default_factory=list)


def contiguous(lines: FileLines, keys: Sequence[str], lo: int = 0) -> list[int]:
    """Start lines (>= lo) where `keys` occur as one block, compared whitespace-insensitively."""
    if not keys:
        return []
    rarest = min(range(len(keys)), key=lambda k: (not keys[k], len(lines.where.get(keys[k], ()))))
    found = []
    for at in lines.where.get(keys[rarest], ()):
        start = at - rarest
        if start >= lo and start + len(keys) <= len(lines) and lines.keys[start : start + len(keys)] == list(keys):
            found.append(start)
    return found


def _rank(lines: FileLines, old: Sequence[str], start: int) -> Method:
    actual = lines.text.lines[start : start + len(old)]
    if list(actual) == list(old):
        return "exact"
    if all(a.rstrip() == b.rstrip() for a, b in zip(actual, old, strict=True)):
        return "whitespace"
    return "indentation"


def choose(candidates: Sequence[int], expected: int | None) -> int | None:
    """The one candidate, or the one clearly nearest the expected line; None when it is a toss-up."""
    if len(candidates) == 1:
        return candidates[0]
    if expected is None:
        return None
    near = sorted(candidates, key=lambda c: abs(c - expected))
    first, second = abs(near[0] - expected), abs(near[1] - expected)
    return near[0] if 2 * first < second else None


def _numbers(starts: Sequence[int]) -> str:
    shown = ", ".join(str(s + 1) for s in starts[:5])
    return shown + (", …" if len(starts) > 5 else "")


def place(lines: FileLines, hunk: Hunk, lo: int, expected: int | None) -> Placement:
    """Where and how `hunk` applies to the original file, or HunkFailure with the reason."""
    old = hunk.old_side()
    if not old:
        return _place_without_context(lines, hunk, expected)
    keys = [line_key(text) for text in old]
    starts = contiguous(lines, keys, lo) or (contiguous(lines, keys, 0) if lo else [])
    if starts:
        try:
            return _place_contiguous(lines, hunk, old, starts, expected)
        except IndentationMismatch:
            return _place_strict(lines, hunk, lo, expected)
    done = _already_applied(lines, hunk)
    if done is not None:
        return done
    if not hunk.fuzzy:
        raise HunkFailure(_not_found(lines, hunk), _closest(lines, hunk, keys))
    return _place_fuzzy(lines, hunk, keys, lo, expected)


def _place_contiguous(
    lines: FileLines, hunk: Hunk, old: list[str], starts: list[int], expected: int | None
) -> Placement:
    ranks = {s: _rank(lines, old, s) for s in starts}
    best_rank = min(ranks.values(), key=_RANKS.index)
    tied = [s for s in starts if ranks[s] == best_rank]
    start = choose(tied, expected)
    if start is None:
        raise HunkFailure(
            f"its lines occur {len(tied)} times in the file (at lines {_numbers(tied)}) and nothing says which is "
            "meant; add a few more context lines that differ between those places",
            (tied[0], tied[0] + len(old)),
        )
    reading = _Reading(list(range(start, start + len(old))), best_rank)
    return _assemble(lines, hunk, reading)


def _already_applied(lines: FileLines, hunk: Hunk) -> Placement | None:
    new = hunk.new_side()
    if not hunk.changes() or not new or not any(text.strip() for text in new):
        return None
    found = contiguous(lines, [lines.key(text) for text in new])
    if not found:
        return None
    return Placement(found[0], found[0], (), "exact", ("already applied: its result is already in the file",), True)


def _place_without_context(lines: FileLines, hunk: Hunk, expected: int | None) -> Placement:
    added = tuple((text, None) for text in hunk.new_side())
    if not len(lines):
        return Placement(0, 0, added, "exact")
    if expected is None:
        raise HunkFailure(
            "it adds lines without any context lines and without a line number, so there is no telling where they "
            "go; include 2-3 unchanged lines around the change as ' ' context"
        )
    if hunk.old_count == 0 and hunk.old_start is not None:
        expected += 1  # `-N,0` means after line N
    at = min(max(expected, 0), len(lines))
    note = f"placed by its line number alone ({at + 1}): the hunk has no context lines"
    return Placement(at, at, added, "exact", (note,))


def _place_fuzzy(lines: FileLines, hunk: Hunk, keys: list[str], lo: int, expected: int | None) -> Placement:
    try:
        return _place_aligned(lines, hunk, keys, lo, expected)
    except IndentationMismatch:
        return _place_strict(lines, hunk, lo, expected)


def _place_strict(lines: FileLines, hunk: Hunk, lo: int, expected: int | None) -> Placement:
    """Lines that differ only in indentation were paired up; insist on indentation and align again."""
    strict = FileLines(lines.text, key=str.rstrip)
    return _place_aligned(strict, hunk, [text.rstrip() for text in hunk.old_side()], lo, expected)


def _place_aligned(lines: FileLines, hunk: Hunk, keys: list[str], lo: int, expected: int | None) -> Placement:
    reading, score, span = _best_alignment(lines, hunk, keys, lo)
    _check_agreement(lines, hunk, keys, reading, span)
    _check_unique(lines, keys, hunk, score, span, expected)
    placement = _assemble(lines, hunk, reading)
    _check_mirror_agrees(lines, hunk, keys, lo, placement)
    return placement


def _check_mirror_agrees(lines: FileLines, hunk: Hunk, keys: list[str], lo: int, placement: Placement) -> None:
    """Align again from the other end: ties broken the other way must give the same file."""
    try:
        reading, _, span = _best_alignment(lines, hunk, keys, lo, mirrored=True)
        _check_agreement(lines, hunk, keys, reading, span)
        other = _assemble(lines, hunk, reading)
    except HunkFailure:
        return
    if _result_lines(lines, placement) != _result_lines(lines, other):
        raise HunkFailure(
            "it fits the file in two ways that give different results, because of lines the hunk leaves out or "
            "repeats; include the unchanged lines around the change exactly as they are in the file",
            (min(placement.start, other.start), max(placement.end, other.end)),
        )


def _result_lines(lines: FileLines, placement: Placement) -> list[str]:
    text = lines.text.lines
    return [*text[: placement.start], *(line for line, _ in placement.replacement), *text[placement.end :]]


def _best_alignment(
    lines: FileLines, hunk: Hunk, keys: list[str], lo: int, mirrored: bool = False
) -> tuple[_Reading, float, tuple[int, int]]:
    removable = [kind == "-" for kind, _ in hunk.lines if kind != "+"]
    weights = line_weights(keys, lines.keys)
    result = _align_region(keys, removable, lines.keys[lo:], weights, mirrored)
    if result is None and lo:
        lo, result = 0, _align_region(keys, removable, lines.keys, weights, mirrored)
    if result is None:
        raise HunkFailure(_missing_removed_line(lines, hunk), _closest(lines, hunk, keys))
    pairs = [None if p is None else p + lo for p in result.pairs]
    reading = _Reading(pairs, "fuzzy")
    span = (result.start + lo, result.end + lo)
    _pair_misquotes(lines, hunk, reading, span)
    return reading, result.score, span


def _align_region(
    keys: list[str], removable: list[bool], region: list[str], weights: list[float], mirrored: bool
) -> Alignment | None:
    """`align`, or the same run back to front (so equal-scoring choices are broken the other way)."""
    if not mirrored:
        return align(keys, removable, region, weights)
    found = align(keys[::-1], removable[::-1], region[::-1], weights[::-1])
    if found is None:
        return None
    n = len(region)
    pairs = tuple(None if p is None else n - 1 - p for p in found.pairs[::-1])
    return Alignment(found.score, n - found.end, n - found.start, pairs)


def _missing_removed_line(lines: FileLines, hunk: Hunk) -> str:
    for kind, text in hunk.lines:
        if kind == "-" and lines.key(text) not in lines.where:
            return f"a line it removes is not in the file: {text.strip()[:120]!r}"
    return "the lines it removes are not in the file in the order the hunk gives them"


def _pair_misquotes(lines: FileLines, hunk: Hunk, reading: _Reading, span: tuple[int, int]) -> None:
    """Context lines missing from the file that resemble the file's line at that spot are misquotes of it.

    Blank context lines at a blank spot are paired too (the alignment may have left them out
    to avoid a gap), so they count as agreement.
    """
    old = hunk.old_side()
    pairs = reading.pairs
    kinds = [kind for kind, _ in hunk.lines if kind != "+"]
    for k in [*range(len(old)), *range(len(old) - 1, -1, -1)]:
        if pairs[k] is not None or kinds[k] != " ":
            continue
        at = _natural_spot(pairs, k, len(lines))
        if at is None or at in pairs:
            continue
        actual = lines.text.lines[at]
        if not old[k].strip() and not actual.strip():
            pairs[k] = at
        elif old[k].strip() and _resembles(old[k], actual):
            pairs[k] = at
            reading.notes.append(
                f"context {old[k].strip()[:60]!r} differs from the file's line {at + 1}; kept the file's line"
            )


def _code_part(text: str) -> str:
    return TRAILING_COMMENT.sub("", text).strip()


def _natural_spot(pairs: Sequence[int | None], k: int, size: int) -> int | None:
    """The file line old-side line `k` stands for, judged from its nearest placed neighbours."""
    before = next(((i, pairs[i]) for i in range(k - 1, -1, -1) if pairs[i] is not None), None)
    after = next(((i, pairs[i]) for i in range(k + 1, len(pairs)) if pairs[i] is not None), None)
    if before is not None and after is not None:
        (k0, j0), (k1, j1) = before, after
        assert j0 is not None and j1 is not None
        return j0 + (k - k0) if k1 - k0 == j1 - j0 else None  # only a slot of the same size is unambiguous
    if before is not None and before[1] is not None:
        spot = before[1] + (k - before[0])
    elif after is not None and after[1] is not None:
        spot = after[1] - (after[0] - k)
    else:
        return None
    return spot if 0 <= spot < size else None


def _resembles(quoted: str, actual: str) -> bool:
    a, b = quoted.strip(), actual.strip()
    if _code_part(a) == _code_part(b):
        return True  # the same code, with a comment added, dropped or reworded
    if a and b and (a.startswith(b) or b.startswith(a)):
        return True
    return difflib.SequenceMatcher(None, a, b).ratio() >= TYPO_RATIO


def _check_agreement(lines: FileLines, hunk: Hunk, keys: list[str], reading: _Reading, span: tuple[int, int]) -> None:
    old_kinds = [kind for kind, _ in hunk.lines if kind != "+"]
    missing = [k for k, p in enumerate(reading.pairs) if p is None and keys[k] and old_kinds[k] == " "]
    exact = [k for k, p in enumerate(reading.pairs) if p is not None and lines.keys[p] == keys[k]]
    weights = line_weights(keys, lines.keys)
    agreement = sum(weights[k] for k in exact) / max(sum(weights), 1e-9)
    misquotes = len(reading.notes)
    skipped = _skipped_runs(reading.pairs)
    if agreement < MIN_AGREEMENT or not any(keys[k] for k in exact):
        raise HunkFailure(f"only {len(exact)} of its {len(keys)} old lines agree with the file", span)
    if misquotes > max(1, sum(1 for k in keys if k) // 3):
        raise HunkFailure(f"{misquotes} of its context lines differ from the file", span)
    if missing:
        _guess_added(hunk, reading, missing, misquotes + len(skipped), span)
    for start, end in skipped:
        reading.notes.append(f"kept file lines {start + 1}-{end} that the hunk leaves out")
    _check_insertions(hunk, reading, span)


def _skipped_runs(pairs: Sequence[int | None]) -> list[tuple[int, int]]:
    placed = sorted(p for p in pairs if p is not None)
    return [(a + 1, b) for a, b in itertools.pairwise(placed) if b > a + 1]


def _guess_added(hunk: Hunk, reading: _Reading, missing: list[int], other_doubts: int, span: tuple[int, int]) -> None:
    """A context line found nowhere in the file is taken as an added line missing its '+', if alone."""
    old = hunk.old_side()
    if len(missing) > 1 or other_doubts:
        shown = ", ".join(repr(old[k].strip()[:60]) for k in missing[:3])
        raise HunkFailure(f"context line(s) not found in the file: {shown}", span)
    reading.guessed.add(missing[0])
    reading.notes.append(f"{old[missing[0]].strip()[:60]!r} is not in the file; added it as if marked '+'")


def _check_insertions(hunk: Hunk, reading: _Reading, span: tuple[int, int]) -> None:
    """Added lines next to file lines the hunk leaves out have no defined place among them."""
    prev: int | None = None
    pending = False
    k = 0
    for kind, _ in hunk.lines:
        if kind == "+" or (kind == " " and k in reading.guessed):
            pending = True
            k += kind == " "
            continue
        at = reading.pairs[k]
        k += 1
        if at is None:
            continue
        if pending and prev is not None and at > prev + 1:
            raise HunkFailure(
                f"its added lines sit next to file lines {prev + 2}-{at} that the hunk leaves out, so their place "
                "among those lines is unknown; include those lines as context",
                span,
            )
        prev, pending = at, False


def _check_unique(
    lines: FileLines, keys: list[str], hunk: Hunk, score: float, span: tuple[int, int], expected: int | None
) -> None:
    masked = list(lines.keys)
    for j in range(span[0], span[1]):
        masked[j] = "\x00"  # a key no line has
    removable = [kind == "-" for kind, _ in hunk.lines if kind != "+"]
    other = align(keys, removable, masked, line_weights(keys, lines.keys))
    if other is None or other.score < score - AMBIGUITY_MARGIN:
        return
    if choose([span[0], other.start], expected) == span[0]:
        return
    raise HunkFailure(
        f"it matches lines {span[0] + 1}-{span[1]} and lines {other.start + 1}-{other.end} about equally well; "
        "add context lines that tell them apart",
        span,
    )


def _assemble(lines: FileLines, hunk: Hunk, reading: _Reading) -> Placement:
    text = lines.text
    exact_pairs = [
        (old, text.lines[p])
        for old, p in zip(hunk.old_side(), reading.pairs, strict=True)
        if p is not None and lines.keys[p] == lines.key(old)
    ]
    shift = common_shift(exact_pairs)
    if shift is None:
        if any(t.strip() for t in _added_texts(hunk, reading)):
            raise IndentationMismatch(
                "its context lines are indented inconsistently with the file, so added lines would be misindented; "
                "copy the context lines' indentation exactly"
            )
        shift = NO_SHIFT
    if shift != NO_SHIFT and lines.indents_blank_lines() and any(not t.strip() for t in _added_texts(hunk, reading)):
        raise HunkFailure(
            f"it is indented differently from the file ({shift.describe()} would fit) and adds blank lines, but this "
            "file keeps indentation on blank lines, so their exact content is unknown; send the hunk with the "
            "file's own indentation"
        )
    placed = [p for p in reading.pairs if p is not None]
    start, end = min(placed), max(placed) + 1
    out = _replacement(lines, hunk, reading, shift, start)
    method = "indentation" if reading.method == "exact" and shift != NO_SHIFT else reading.method
    notes = [*reading.notes, shift.describe()] if shift != NO_SHIFT else reading.notes
    return Placement(start, end, tuple(out), method, tuple(notes))


def _added_texts(hunk: Hunk, reading: _Reading) -> list[str]:
    old = hunk.old_side()
    return [text for kind, text in hunk.lines if kind == "+"] + [old[k] for k in reading.guessed]


def _replacement(
    lines: FileLines, hunk: Hunk, reading: _Reading, shift: Shift, start: int
) -> list[tuple[str, str | None]]:
    text = lines.text
    out: list[tuple[str, str | None]] = []
    pos, k = start, 0
    previous = " "  # what the line before was: " " context (or the start), "-" removed, "+" added
    for index, (kind, line) in enumerate(hunk.lines):
        at = None if kind == "+" else reading.pairs[k]
        added = kind == "+" or (kind == " " and k in reading.guessed)
        k += kind != "+"
        if added:
            if previous == " ":  # added lines right after removed ones take their place
                pos = _flush_before_removal(lines, hunk, reading, index, pos, out)
            out.append((_reindent(shift, line), None))
            previous = "+"
        elif at is not None:
            out.extend((text.lines[j], text.eols[j]) for j in range(pos, at))
            if kind == " ":
                out.append((text.lines[at], text.eols[at]))
            pos = at + 1
            previous = kind
    return out


def _flush_before_removal(
    lines: FileLines, hunk: Hunk, reading: _Reading, index: int, pos: int, out: list[tuple[str, str | None]]
) -> int:
    """Added lines followed by removed ones replace them: keep the file lines shown before first."""
    k = sum(1 for kind, _ in hunk.lines[:index] if kind != "+")
    kinds = [kind for kind, _ in hunk.lines[index:] if kind != "+"]
    nxt = next(((kind, at) for kind, at in zip(kinds, reading.pairs[k:], strict=False) if at is not None), None)
    if nxt is None or nxt[0] != "-":
        return pos
    out.extend((lines.text.lines[j], lines.text.eols[j]) for j in range(pos, nxt[1]))
    return nxt[1]


def _reindent(shift: Shift, text: str) -> str:
    moved = shift.apply(text)
    if moved is None:
        raise HunkFailure(f"the added line {text.strip()[:60]!r} is indented less than the file needs; re-indent it")
    return moved


def _not_found(lines: FileLines, hunk: Hunk) -> str:
    for text in hunk.old_side():
        if text.strip() and lines.key(text) not in lines.where:
            return f"SEARCH is not in the file; for example this line is nowhere in it: {text.strip()[:120]!r}"
    return "SEARCH is not in the file as one block (its lines are there, but not together in this order)"


def _closest(lines: FileLines, hunk: Hunk, keys: list[str]) -> tuple[int, int] | None:
    removable = [False] * len(keys)
    result = align(keys, removable, lines.keys, line_weights(keys, lines.keys))
    return None if result is None or result.end <= result.start else (result.start, result.end)
