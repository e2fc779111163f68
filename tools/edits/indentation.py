"""How a hunk's indentation relates to the file's, so added lines can be re-indented to fit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tools.edits.text import indent_of


@dataclass(frozen=True)
class Shift:
    """Added lines get `add` prepended, or `remove` stripped from their start."""

    add: str = ""
    remove: str = ""

    def apply(self, text: str) -> str | None:
        """`text` re-indented, or None when it cannot be dedented by `remove`."""
        if not text.strip():
            return text
        if self.remove:
            return text[len(self.remove) :] if text.startswith(self.remove) else None
        return self.add + text

    def describe(self) -> str:
        if self.add:
            return f"indented added lines by {len(self.add)} more {'tab' if self.add[0] == chr(9) else 'space'}(s)"
        return f"dedented added lines by {len(self.remove)} character(s)"


NO_SHIFT = Shift()


def shift_between(hunk_line: str, file_line: str) -> Shift | None:
    """The shift that turns the hunk line's indentation into the file line's, if one does."""
    h, f = indent_of(hunk_line), indent_of(file_line)
    if h == f:
        return NO_SHIFT
    if f.endswith(h):
        return Shift(add=f[: len(f) - len(h)])
    if h.endswith(f):
        return Shift(remove=h[: len(h) - len(f)])
    return None


def common_shift(pairs: Iterable[tuple[str, str]]) -> Shift | None:
    """One shift shared by every non-blank (hunk line, file line) pair; None if they disagree."""
    found: Shift | None = NO_SHIFT
    seen = False
    for hunk_line, file_line in pairs:
        if not hunk_line.strip() or not file_line.strip():
            continue
        shift = shift_between(hunk_line, file_line)
        if shift is None or (seen and shift != found):
            return None
        found, seen = shift, True
    return found
