"""What an edit changes, per file and as one unified diff (bounded)."""

from __future__ import annotations

import difflib

from tools.edits.report import Action, FileChange

MAX_DIFF_CHARS = 40_000


def _lines(data: bytes | None) -> list[str]:
    if data is None:
        return []
    return data.decode("utf-8", "replace").splitlines(keepends=True)


def describe_changes(
    originals: dict[str, bytes | None], changes: dict[str, bytes | None], renames: dict[str, str]
) -> tuple[list[FileChange], str, bool]:
    files: list[FileChange] = []
    chunks: list[str] = []
    sources = set(renames.values())
    for path in sorted(changes):
        if path in sources:
            continue
        old_path = renames.get(path)
        before = originals[old_path] if old_path else originals[path]
        after = changes[path]
        old_lines, new_lines = _lines(before), _lines(after)
        diff = list(difflib.unified_diff(old_lines, new_lines, f"a/{old_path or path}", f"b/{path}", n=3))
        added = sum(1 for d in diff if d.startswith("+") and not d.startswith("+++"))
        removed = sum(1 for d in diff if d.startswith("-") and not d.startswith("---"))
        action: Action = (
            "renamed" if old_path else "created" if before is None else "deleted" if after is None else "modified"
        )
        files.append(FileChange(path=path, action=action, old_path=old_path, added=added, removed=removed))
        chunks.append("".join(d if d.endswith("\n") else d + "\n\\ No newline at end of file\n" for d in diff))
    text = "".join(chunks)
    truncated = len(text) > MAX_DIFF_CHARS
    if truncated:
        text = text[:MAX_DIFF_CHARS] + "\n… diff truncated; show_diff (or git diff) has all of it\n"
    return files, text, truncated
