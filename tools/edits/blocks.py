"""SEARCH/REPLACE blocks, whole-file writes, deletes and renames, as structured input or as text.

The text form is the one models know:

    path/to/file.py
    <<<<<<< SEARCH
    old lines
    =======
    new lines
    >>>>>>> REPLACE

A block becomes a hunk (lines both sides share are context), so it is placed by the same
engine as a diff hunk; blocks are matched contiguously only (exact, whitespace or
indentation), since every SEARCH line is meant to be in the file.
"""

from __future__ import annotations

import difflib
import re

from pydantic import BaseModel, Field, model_validator

from tools.edits.patch_parse import Hunk, Kind
from tools.errors import ToolInputError

SEARCH_MARK = re.compile(r"^<{5,9} ?SEARCH\s*$")
DIVIDER = re.compile(r"^={5,9}\s*$")
REPLACE_MARK = re.compile(r"^>{5,9} ?REPLACE\s*$")


class EditBlock(BaseModel):
    """One change to one file: search+replace, content (whole file), delete, or move_to."""

    path: str = Field(max_length=1024, description="Repo-relative path")
    search: str | None = Field(default=None, description="Exact lines to find (unique in the file)")
    replace: str | None = Field(default=None, description="Lines to put in their place")
    content: str | None = Field(default=None, description="Whole new file content (creates or overwrites)")
    delete: bool = Field(default=False, description="Delete the file")
    move_to: str | None = Field(default=None, max_length=1024, description="Rename the file to this path")

    @model_validator(mode="after")
    def _one_shape(self) -> EditBlock:
        shapes = [
            self.search is not None or self.replace is not None,
            self.content is not None,
            self.delete,
            self.move_to is not None,
        ]
        if sum(shapes) != 1:
            raise ValueError(
                f"block for {self.path!r} must have exactly one of: search+replace, content, delete, move_to"
            )
        if (self.search is None) != (self.replace is None):
            raise ValueError(f"block for {self.path!r} needs both search and replace (replace may be empty)")
        return self


def is_block_text(text: str) -> bool:
    return any(SEARCH_MARK.match(line.rstrip("\r")) for line in text.split("\n"))


def parse_block_text(text: str) -> list[EditBlock]:
    """EditBlocks from SEARCH/REPLACE text, or ToolInputError naming the malformed block."""
    lines = [line.rstrip("\r") for line in text.split("\n")]
    blocks: list[EditBlock] = []
    i = 0
    while i < len(lines):
        if not SEARCH_MARK.match(lines[i]):
            i += 1
            continue
        path = _path_before(lines, i, len(blocks) + 1)
        divider = _find(lines, i + 1, DIVIDER, f"block {len(blocks) + 1} ({path}) has no ======= line")
        end = _find(lines, divider + 1, REPLACE_MARK, f"block {len(blocks) + 1} ({path}) has no >>>>>>> REPLACE line")
        blocks.append(
            EditBlock(path=path, search=_joined(lines[i + 1 : divider]), replace=_joined(lines[divider + 1 : end]))
        )
        i = end + 1
    return blocks


def _joined(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def _find(lines: list[str], start: int, pattern: re.Pattern[str], problem: str) -> int:
    for j in range(start, len(lines)):
        if pattern.match(lines[j]):
            return j
        if SEARCH_MARK.match(lines[j]):
            break
    raise ToolInputError(problem)


def _path_before(lines: list[str], at: int, number: int) -> str:
    for j in range(at - 1, max(at - 4, -1), -1):
        if lines[j].strip().startswith("```"):
            continue  # a fence between the path and the block
        candidate = lines[j].strip().strip("`*:").strip()
        if candidate and " " not in candidate:
            return candidate
    raise ToolInputError(f"block {number} has no file path on the line before <<<<<<< SEARCH")


def block_hunk(search: str, replace: str, index: int) -> Hunk:
    """The block as a hunk: lines SEARCH and REPLACE share become context."""
    old, new = search.splitlines(), replace.splitlines()
    hunk = Hunk(index=index, header=f"block {index}", old_start=None, fuzzy=False)
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            hunk.lines += [(" ", text) for text in old[i1:i2]]
            continue
        minus: list[tuple[Kind, str]] = [("-", text) for text in old[i1:i2]]
        plus: list[tuple[Kind, str]] = [("+", text) for text in new[j1:j2]]
        hunk.lines += minus + plus
    return hunk
