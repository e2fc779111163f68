"""Plan a whole edit in memory, then write all of it or none of it.

`run_edit` is the one entry point: parse the input, apply each file operation to an
in-memory copy of the files it touches (reading through `ConfinedDir`), collect every
hunk's outcome, check the plan's file list, and only when nothing failed (and not a dry run)
commit the new contents to disk in one all-or-nothing step.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tools.edits.blocks import EditBlock, is_block_text, parse_block_text
from tools.edits.confined import ConfinedDir, check_path
from tools.edits.file_ops import FileOp, ops_from_blocks, ops_from_patch
from tools.edits.hunks import apply_hunks
from tools.edits.patch_parse import parse_patch
from tools.edits.report import EditProblem, EditReport, EditStatus, HunkReport
from tools.edits.summary import describe_changes
from tools.edits.text import TextFile
from tools.errors import ToolInputError

MAX_INPUT_CHARS = 1_000_000
MAX_FILES = 100
MAX_BLOCKS = 200


@dataclass
class EditLimits:
    max_input_chars: int = MAX_INPUT_CHARS
    max_files: int = MAX_FILES
    max_file_bytes: int = 2_000_000


@dataclass
class _Staging:
    """The files an edit touches: as on disk, and as the edit leaves them so far."""

    tree: ConfinedDir
    originals: dict[str, bytes | None] = field(default_factory=dict)
    current: dict[str, bytes | None] = field(default_factory=dict)
    renames: dict[str, str] = field(default_factory=dict)  # new path -> old path
    hunks: list[HunkReport] = field(default_factory=list)
    problems: list[EditProblem] = field(default_factory=list)

    def get(self, path: str) -> bytes | None:
        if path not in self.current:
            data = self.tree.read(path)
            self.originals[path] = self.current[path] = data
        return self.current[path]

    def put(self, path: str, data: bytes | None) -> None:
        self.get(path)
        self.current[path] = data

    def changes(self) -> dict[str, bytes | None]:
        return {p: data for p, data in self.current.items() if data != self.originals[p]}

    def refuse(self, label: str, reason: str) -> None:
        self.problems.append(EditProblem(file=label, reason=reason))


def parse_input(patch: str | None, blocks: Sequence[EditBlock] | None, limits: EditLimits) -> list[FileOp]:
    """The edit as file operations, or ToolInputError for input that cannot be an edit."""
    if (patch is None) == (blocks is None):
        raise ToolInputError("send exactly one of `patch` (a unified diff or SEARCH/REPLACE text) or `blocks`")
    if patch is not None:
        if len(patch) > limits.max_input_chars:
            raise ToolInputError(
                f"the patch is {len(patch):,} characters; the limit is {limits.max_input_chars:,}. Split the "
                "change into several smaller edits"
            )
        if "\x00" in patch:
            raise ToolInputError("the patch contains a NUL character; binary changes are not supported")
        ops = ops_from_blocks(parse_block_text(patch)) if is_block_text(patch) else ops_from_patch(parse_patch(patch))
    else:
        assert blocks is not None
        if not blocks or len(blocks) > MAX_BLOCKS:
            raise ToolInputError(f"send between 1 and {MAX_BLOCKS} blocks, got {len(blocks)}")
        size = sum(len(b.search or "") + len(b.replace or "") + len(b.content or "") for b in blocks)
        if size > limits.max_input_chars:
            raise ToolInputError(f"the blocks hold {size:,} characters; the limit is {limits.max_input_chars:,}")
        ops = ops_from_blocks(list(blocks))
    if len(ops) > limits.max_files:
        raise ToolInputError(f"the edit touches {len(ops)} files; the limit is {limits.max_files}. Split it up")
    return ops


def run_edit(
    root: Path,
    *,
    patch: str | None = None,
    blocks: Sequence[EditBlock] | None = None,
    dry_run: bool = False,
    allowed: Sequence[str] | None = None,
    enforce_allowed: bool = True,
    owner: tuple[int, int] | None = None,
    limits: EditLimits | None = None,
    before_write: Callable[[EditReport], None] | None = None,
) -> EditReport:
    """Apply an edit to the files under `root`, all or nothing; the report says what happened.

    `before_write` sees the planned report just before anything is written and may refuse the
    edit by raising ToolInputError (nothing is written then).
    """
    limits = limits or EditLimits()
    ops = parse_input(patch, blocks, limits)
    tree = ConfinedDir(root, owner, limits.max_file_bytes)
    staging = _Staging(tree)
    for op in ops:
        _apply_op(staging, op)
    changes = staging.changes()
    warnings = _check_allowed(staging, changes, allowed, enforce_allowed)
    files, diff, truncated = describe_changes(staging.originals, changes, staging.renames)
    status: EditStatus = "refused" if staging.problems else ("applied" if changes else "already_applied")
    report = EditReport(
        status=status, dry_run=dry_run, files=files, hunks=staging.hunks, problems=staging.problems,
        warnings=warnings, diff=diff, diff_truncated=truncated,
    )  # fmt: skip
    if status == "applied" and not dry_run:
        if before_write is not None:
            before_write(report)
        tree.commit(changes, staging.originals)
    return report


def _apply_op(staging: _Staging, op: FileOp) -> None:
    try:
        if op.content is not None or op.created:
            _write_whole(staging, op)
        elif op.deleted:
            _delete(staging, op)
        else:
            _modify(staging, op)
    except ToolInputError as exc:
        staging.refuse(op.label, str(exc))


def _existing(staging: _Staging, candidates: tuple[str, ...]) -> tuple[int, str] | None:
    for index, candidate in enumerate(candidates):
        path = check_path(candidate)
        if staging.get(path) is not None:
            return index, path
    return None


def _write_whole(staging: _Staging, op: FileOp) -> None:
    path = check_path(op.new_paths[0])
    current = staging.get(path)
    text = op.content if op.content is not None else _created_text(op)
    data = text.encode("utf-8")
    if len(data) > staging.tree.max_file_bytes:
        raise ToolInputError(f"the new content of {path} is {len(data):,} bytes; the limit is "
                             f"{staging.tree.max_file_bytes:,}")  # fmt: skip
    if op.created and current not in (None, b"", data):
        raise ToolInputError(
            f"{path} already exists; to change it, send a diff (or SEARCH/REPLACE) against its current content"
        )
    staging.put(path, data)


def _created_text(op: FileOp) -> str:
    lines = [text for hunk in op.hunks for kind, text in hunk.lines if kind == "+"]
    no_eol = bool(op.hunks) and op.hunks[-1].new_no_eol
    return "\n".join(lines) + ("" if no_eol or not lines else "\n")


def _delete(staging: _Staging, op: FileOp) -> None:
    found = _existing(staging, op.old_paths)
    if found is None:
        staging.hunks.append(HunkReport(file=op.label, hunk=1, status="already_applied", notes=["already deleted"]))
        return
    _, path = found
    current = staging.get(path)
    assert current is not None
    old = [text for hunk in op.hunks for text in hunk.old_side()]
    text = TextFile.decode(current, path)
    if op.hunks and text.lines and not _same_lines(text, old):
        raise ToolInputError(f"{path} does not hold the lines the patch deletes; read it again before deleting it")
    staging.put(path, None)


def _same_lines(text: TextFile, old: list[str]) -> bool:
    return [line.strip() for line in text.lines] == [line.strip() for line in old]


def _modify(staging: _Staging, op: FileOp) -> None:
    found = _existing(staging, op.old_paths)
    if found is None:
        tried = " or ".join(dict.fromkeys(op.old_paths))
        raise ToolInputError(f"there is no file {tried}; check the path (read_file or search_repo), or create it "
                             "with a `--- /dev/null` diff or a `content` block")  # fmt: skip
    index, source = found
    target = check_path(op.new_paths[min(index, len(op.new_paths) - 1)])
    current = staging.get(source)
    assert current is not None
    replaced = _replace_once(staging, op, source, current)
    result = current if replaced is None else replaced
    if replaced is None and op.hunks:
        outcome = apply_hunks(TextFile.decode(current, source), op.hunks, source)
        staging.hunks.extend(outcome.reports)
        staging.problems.extend(outcome.problems)
        result = outcome.data if outcome.data is not None else current
    if target != source:
        if staging.get(target) is not None:
            raise ToolInputError(f"cannot rename {source} to {target}: {target} already exists")
        staging.put(source, None)
        staging.renames[target] = source
    staging.put(target, result)


def _replace_once(staging: _Staging, op: FileOp, path: str, current: bytes) -> bytes | None:
    """A block whose SEARCH occurs verbatim: the content with it replaced; refused if it occurs more often.

    None when there is no verbatim SEARCH to try (a diff) or it is not found (then hunks match line by line).
    """
    if op.search is None or op.replace is None:
        return None
    text = TextFile.decode(current, path)
    whole = current.decode(text.encoding)
    starts = _occurrences(whole, op.search)
    if "\n" in op.search:  # a block of lines matches whole lines only, never from mid-line
        starts = [at for at in starts if at == 0 or whole[at - 1] == "\n"]
    found = len(starts)
    if found == 0:
        return None  # try it line by line: whitespace, indentation, line endings
    if found > 1:
        lines = sorted({whole.count("\n", 0, at) + 1 for at in starts})
        raise ToolInputError(
            f"SEARCH occurs {found} times in {path} (lines {', '.join(map(str, lines[:5]))}); add lines to make "
            "it unique"
        )
    at = starts[0]
    staging.hunks.append(HunkReport(file=path, hunk=op.hunks[0].index, status="applied", method="exact",
                                    line=whole.count("\n", 0, at) + 1))  # fmt: skip
    return (whole[:at] + op.replace + whole[at + len(op.search) :]).encode(text.encoding)


def _occurrences(text: str, needle: str) -> list[int]:
    found, at = [], text.find(needle)
    while at >= 0:
        found.append(at)
        at = text.find(needle, at + 1)
    return found


def _check_allowed(
    staging: _Staging, changes: dict[str, bytes | None], allowed: Sequence[str] | None, enforce: bool
) -> list[str]:
    if allowed is None:
        return []
    outside = sorted(path for path in changes if not any(_allowed(path, pattern) for pattern in allowed))
    if not outside:
        return []
    message = f"the approved plan does not list {', '.join(outside)}"
    if enforce:
        staging.refuse(", ".join(outside), message + "; stay within the plan's files, or revise the plan first")
        return []
    return [message + " (allowed by the warn-only plan policy; logged)"]


def _allowed(path: str, pattern: str) -> bool:
    pattern = pattern.strip().removeprefix("./")
    if pattern.endswith("/"):
        return path.startswith(pattern)
    return path == pattern or path.startswith(pattern + "/") or fnmatch.fnmatchcase(path, pattern)
