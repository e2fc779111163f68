"""Apply one file's hunks: place each against the original, then splice all placements at once."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from tools.edits.locate import FileLines, HunkFailure, Placement, place
from tools.edits.patch_parse import Hunk
from tools.edits.report import EditProblem, HunkReport, HunkStatus
from tools.edits.text import TextFile

CLOSEST_CONTEXT = 2
CLOSEST_MAX_LINES = 20


@dataclass
class HunkOutcome:
    data: bytes | None  # the new content, or None when any hunk failed or nothing changed
    reports: list[HunkReport] = field(default_factory=list)
    problems: list[EditProblem] = field(default_factory=list)


def numbered(text: TextFile, start: int, end: int) -> str:
    """File lines [start, end) widened by a little context, numbered like an editor does."""
    lo, hi = max(0, start - CLOSEST_CONTEXT), min(len(text.lines), end + CLOSEST_CONTEXT)
    hi = min(hi, lo + CLOSEST_MAX_LINES)
    width = len(str(hi))
    return "\n".join(f"{i + 1:>{width}}: {text.lines[i]}" for i in range(lo, hi))


def apply_hunks(text: TextFile, hunks: list[Hunk], path: str) -> HunkOutcome:
    lines = FileLines(text)
    outcome = HunkOutcome(None)
    placed: list[tuple[Hunk, Placement]] = []
    lo, drift = 0, 0
    for hunk in hunks:
        expected = None if hunk.old_start is None else max(hunk.old_start - 1, 0) + drift
        try:
            placement = place(lines, hunk, lo, expected)
        except HunkFailure as failure:
            closest = numbered(text, *failure.near) if failure.near else None
            outcome.problems.append(EditProblem(file=path, hunk=hunk.index, reason=failure.reason, closest=closest))
            outcome.reports.append(HunkReport(file=path, hunk=hunk.index, status="failed"))
            continue
        status: HunkStatus = "already_applied" if placement.already_applied else "applied"
        outcome.reports.append(
            HunkReport(file=path, hunk=hunk.index, status=status, method=placement.method,
                       line=placement.start + 1, notes=list(placement.notes))
        )  # fmt: skip
        if not placement.already_applied:
            placed.append((hunk, placement))
            lo = placement.end
            drift = drift if hunk.old_start is None else placement.start - max(hunk.old_start - 1, 0)
    if outcome.problems:
        return outcome
    _check_mixed(outcome, path)
    _check_overlaps(outcome, placed, path)
    if not outcome.problems and placed:
        outcome.data = splice(text, placed).encode(path)
    return outcome


def _check_mixed(outcome: HunkOutcome, path: str) -> None:
    done = [r.hunk for r in outcome.reports if r.status == "already_applied"]
    todo = [r.hunk for r in outcome.reports if r.status == "applied"]
    if done and todo:
        outcome.problems.append(EditProblem(
            file=path,
            reason=f"hunk(s) {', '.join(map(str, done))} are already in the file but hunk(s) "
            f"{', '.join(map(str, todo))} are not; the file changed since this diff was written. Read it again "
            "and send only what is still missing",
        ))  # fmt: skip


def _check_overlaps(outcome: HunkOutcome, placed: list[tuple[Hunk, Placement]], path: str) -> None:
    ordered = sorted(placed, key=lambda item: (item[1].start, item[1].end))
    for (first, a), (second, b) in itertools.pairwise(ordered):
        if b.start < a.end:
            outcome.problems.append(EditProblem(
                file=path, hunk=second.index,
                reason=f"it overlaps hunk {first.index} (both change lines {b.start + 1}-{a.end}); merge them into "
                "one hunk",
            ))  # fmt: skip


def splice(text: TextFile, placed: list[tuple[Hunk, Placement]]) -> TextFile:
    """The file with every placement's lines in place of the lines it covers."""
    rows: list[tuple[str, str | None]] = list(zip(text.lines, text.eols, strict=True))
    total = len(rows)
    no_final_newline = False
    for hunk, placement in sorted(placed, key=lambda item: item[1].start, reverse=True):
        rows[placement.start : placement.end] = placement.replacement
        if placement.end == total and hunk.new_no_eol:
            no_final_newline = True
    eols: list[str] = []
    for i, (_, eol) in enumerate(rows):
        last = i == len(rows) - 1
        if eol is None:
            eols.append("" if last and no_final_newline else text.newline)
        else:
            eols.append(eol if last or eol else text.newline)
    return TextFile(tuple(line for line, _ in rows), tuple(eols), text.newline, text.encoding)
