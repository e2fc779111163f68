"""Read unified diffs the way models write them, not only the way `git diff` prints them.

Forgiven here: CRLF line endings, markdown fences, commentary between files, hunk headers
without line numbers (`@@ ... @@`) or with wrong counts (counts are ignored; a hunk ends at
the next header), blank context lines that lost their leading space, `---`/`+++` headers
without `a/` `b/` prefixes, a missing final newline. Line numbers are kept as hints only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from tools.errors import ToolInputError

Kind = Literal[" ", "-", "+"]
HUNK_HEADER = re.compile(r"^@@+\s*-(\d+)(?:,(\d+))?\s+\+(\d+)(?:,(\d+))?\s*@@+(.*)$")
FENCE = re.compile(r"^```[\w+-]*\s*$")
_EXTENDED = ("old mode", "new mode", "similarity index", "dissimilarity index", "index ", "copy from", "copy to")


@dataclass
class Hunk:
    index: int  # 1-based within its file
    header: str
    old_start: int | None  # 1-based line number from the header: a hint, never trusted
    lines: list[tuple[Kind, str]] = field(default_factory=list)
    old_no_eol: bool = False  # "\ No newline at end of file" after an old-side line
    new_no_eol: bool = False
    fuzzy: bool = True  # False for SEARCH/REPLACE blocks: every line is meant to be in the file
    old_count: int | None = None  # from the header; 0 means "insert after line old_start"
    trailing_empty: int = 0  # empty lines at the end so far: layout unless more hunk lines follow

    def old_side(self) -> list[str]:
        return [text for kind, text in self.lines if kind != "+"]

    def new_side(self) -> list[str]:
        return [text for kind, text in self.lines if kind != "-"]

    def changes(self) -> bool:
        return any(kind != " " for kind, _ in self.lines)


@dataclass
class FilePatch:
    old_paths: tuple[str, ...]  # candidate spellings, preferred first; () for a new file
    new_paths: tuple[str, ...]  # () for a deleted file
    hunks: list[Hunk] = field(default_factory=list)
    created: bool = False
    deleted: bool = False
    binary: bool = False

    @property
    def display_path(self) -> str:
        return (self.new_paths or self.old_paths or ("?",))[0]


def _unquote(path: str) -> str:
    if len(path) >= 2 and path[0] == path[-1] == '"':
        raw = path[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
        return raw.encode("latin-1", "replace").decode("utf-8", "replace")
    return path


def _header_path(value: str, prefix: str) -> tuple[str, ...]:
    """Candidates for a `---`/`+++` path: with the a/ or b/ prefix stripped first, then as written."""
    value = value.split("\t", 1)[0].rstrip()
    value = _unquote(value)
    if value == "/dev/null":
        return ()
    if value.startswith(prefix) and len(value) > len(prefix):
        return (value[len(prefix) :], value)
    return (value,)


def _git_line_paths(rest: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if rest.startswith('"'):
        end = rest.find('"', 1)
        while end > 0 and rest[end - 1] == "\\":
            end = rest.find('"', end + 1)
        first, second = rest[: end + 1], rest[end + 1 :].strip()
    else:
        half = (len(rest) - 1) // 2
        if rest.startswith("a/") and rest[half : half + 3] == " b/" and rest[2:half] == rest[half + 3 :]:
            first, second = rest[:half], rest[half + 1 :]
        else:
            first, _, second = rest.partition(" b/")
            second = "b/" + second
    return _header_path(first, "a/"), _header_path(second, "b/")


class _Parser:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.files: list[FilePatch] = []
        self.file: FilePatch | None = None
        self.hunk: Hunk | None = None
        self.saw_minus_header = False

    def run(self) -> list[FilePatch]:
        i = 0
        while i < len(self.lines):
            i = self.step(i)
        self.close_hunk()
        return [f for f in self.files if f.hunks or f.created or f.deleted or f.binary or self.is_rename(f)]

    @staticmethod
    def is_rename(f: FilePatch) -> bool:
        return bool(f.old_paths and f.new_paths and f.old_paths[0] != f.new_paths[0])

    def step(self, i: int) -> int:
        line = self.lines[i]
        nxt = self.lines[i + 1] if i + 1 < len(self.lines) else ""
        if line.startswith("diff --git "):
            self.start_file(*_git_line_paths(line[len("diff --git ") :]))
            self.saw_minus_header = False
        elif line.startswith("--- ") and nxt.startswith("+++ "):
            old, new = _header_path(line[4:], "a/"), _header_path(nxt[4:], "b/")
            current = self.file
            if current is None or current.hunks or self.saw_minus_header:
                current = self.start_file(old, new)
            else:
                self.close_hunk()
                current.old_paths, current.new_paths = old, new
            current.created, current.deleted = current.created or not old, current.deleted or not new
            self.saw_minus_header = True
            return i + 2
        elif line.startswith("@@"):
            self.start_hunk(line)
        elif self.hunk is not None and (line[:1] in (" ", "-", "+", "\\") or line == ""):
            self.hunk_line(line)
        else:
            self.header_line(line)
        return i + 1

    def start_file(self, old: tuple[str, ...], new: tuple[str, ...]) -> FilePatch:
        self.close_hunk()
        self.file = FilePatch(old_paths=old, new_paths=new)
        self.files.append(self.file)
        return self.file

    def start_hunk(self, line: str) -> None:
        self.close_hunk()
        if self.file is None:
            raise ToolInputError(
                "the patch has a hunk (@@) before any file header; start each file with "
                "`--- a/PATH` and `+++ b/PATH` lines"
            )
        match = HUNK_HEADER.match(line)
        self.hunk = Hunk(len(self.file.hunks) + 1, line, int(match[1]) if match else None)
        if match:
            self.hunk.old_count = int(match[2]) if match[2] is not None else 1

    def hunk_line(self, line: str) -> None:
        assert self.hunk is not None
        if line.startswith("\\"):
            self.hunk.trailing_empty = 0  # what came before the marker is the hunk's real last line
            if self.hunk.lines:
                previous = self.hunk.lines[-1][0]
                self.hunk.old_no_eol |= previous in (" ", "-")
                self.hunk.new_no_eol |= previous in (" ", "+")
            return
        kind: Kind = "-" if line.startswith("-") else "+" if line.startswith("+") else " "
        self.hunk.trailing_empty = self.hunk.trailing_empty + 1 if line == "" else 0
        self.hunk.lines.append((kind, line[1:]))

    def header_line(self, line: str) -> None:
        self.close_hunk()
        if self.file is None:
            return  # commentary before the first file
        if line.startswith(("new file mode", "deleted file mode")):
            self.file.created |= line.startswith("new")
            self.file.deleted |= line.startswith("deleted")
        elif line.startswith("rename from "):
            self.file.old_paths = (_unquote(line[len("rename from ") :]),)
        elif line.startswith("rename to "):
            self.file.new_paths = (_unquote(line[len("rename to ") :]),)
        elif line.startswith(("Binary files ", "GIT binary patch")):
            self.file.binary = True

    def close_hunk(self) -> None:
        hunk, self.hunk = self.hunk, None
        if hunk is None or self.file is None:
            return
        for _ in range(hunk.trailing_empty):
            hunk.lines.pop()  # empty lines after a hunk are layout, not context
        if hunk.lines:
            self.file.hunks.append(hunk)


def parse_patch(text: str) -> list[FilePatch]:
    """The files of a unified diff, or ToolInputError saying why it is not one."""
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    lines = [line for line in lines if not FENCE.match(line)]
    files = _Parser(lines).run()
    if not files:
        raise ToolInputError(
            "no file changes found in the patch; send a unified diff (`--- a/PATH`, `+++ b/PATH`, then `@@` "
            "hunks with ' ', '-' and '+' lines) or SEARCH/REPLACE blocks"
        )
    return files
