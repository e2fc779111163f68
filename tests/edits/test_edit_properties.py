"""Properties of the edit engine over generated files and patches: dry runs and refusals never write, and a
patch `difflib` produces applies exactly (and its reverse undoes it)."""

from __future__ import annotations

import difflib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tools.edits.engine import run_edit
from tools.edits.report import EditReport
from tools.errors import ToolInputError

PATH = "pkg/store.py"
OTHER = "pkg/other.py"
OTHER_TEXT = b"UNTOUCHED = True\n"

# Realistic code lines, few enough that they repeat: the same line in several places, and lines that differ
# only in indentation, are what make placement hard.
CODE_LINES = [
    "import os",
    "",
    "def load(path):",
    "    if not path:",
    "        return None",
    "    return open(path).read()",
    "class Store:",
    "    def get(self, key):",
    "        return self.data[key]",
    "    return None",
    "    x += 1",
    "        x += 1",
    "    pass",
    "# TODO: tidy up",
    "    print(x)",
]
# Lines that never occur in a generated original file, for edits that must add something new.
FRESH_LINES = ["    log.debug('fresh %s', key)", "def fresh_helper():", "    self.fresh = {}"]
CORRUPT_LINE = "    corrupted_call(42)  # a line that is in no generated file"

PROPERTY = settings(max_examples=60, deadline=None)

lines_st = st.lists(st.sampled_from(CODE_LINES), max_size=25)


def as_text(lines: list[str], final_newline: bool) -> str:
    text = "\n".join(lines)
    return text + "\n" if lines and final_newline else text


@st.composite
def edited(draw: st.DrawFn, lines: list[str], fresh: bool = False) -> list[str]:
    """`lines` after a few random deletions, insertions and replacements (at least one of them fresh if asked)."""
    out = list(lines)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "replace"] if out else ["insert"]))
        if op == "insert":
            at = draw(st.integers(0, len(out)))
            out[at:at] = draw(st.lists(st.sampled_from(CODE_LINES + FRESH_LINES), min_size=1, max_size=3))
        else:
            at = draw(st.integers(0, len(out) - 1))
            out[at : at + 1] = [] if op == "delete" else [draw(st.sampled_from(CODE_LINES + FRESH_LINES))]
    if fresh:
        at = draw(st.integers(0, len(out)))
        out.insert(at, draw(st.sampled_from(FRESH_LINES)))
    return out


@st.composite
def text_pairs(draw: st.DrawFn, fresh: bool = False) -> tuple[str, str]:
    """An old text and a new one made from it by local edits, each with or without a final newline."""
    old_lines = draw(lines_st)
    new_lines = draw(edited(old_lines, fresh))
    old = as_text(old_lines, draw(st.booleans()))
    new = as_text(new_lines, draw(st.booleans()))
    assume(old != new)
    return old, new


NO_EOL = "\\ No newline at end of file"


def unified(old: str, new: str, path: str = PATH) -> str:
    """`difflib`'s unified diff of old -> new, with git's marker after a line that has no newline."""
    diff = difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{path}", f"b/{path}")
    patch = "".join(line if line.endswith("\n") else f"{line}\n{NO_EOL}\n" for line in diff)
    return patch


@contextmanager
def repo(text: str | bytes) -> Iterator[Path]:
    """A fresh tree holding PATH (with `text`) and an unrelated OTHER file."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "pkg").mkdir()
        (root / PATH).write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        (root / OTHER).write_bytes(OTHER_TEXT)
        yield root


def snapshot(root: Path) -> dict[str, tuple[bytes | None, int, int]]:
    """Every file and directory under root: bytes, mode and mtime."""
    found: dict[str, tuple[bytes | None, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st_ = path.lstat()
            data = path.read_bytes() if name in filenames else None
            found[str(path.relative_to(root))] = (data, st_.st_mode, st_.st_mtime_ns)
    return found


def mangle(patch: str, how: str, pick: int) -> str:
    """The patch broken one of the ways models break patches."""
    lines = patch.split("\n")
    body = [i for i, line in enumerate(lines) if line[:1] in (" ", "-", "+") and not line.startswith(("---", "+++"))]
    if how == "no-line-numbers":
        return "\n".join("@@ ... @@" if line.startswith("@@") else line for line in lines)
    if how == "drop-line" and body:
        del lines[body[pick % len(body)]]
    elif how == "flip-sign" and body:
        at = body[pick % len(body)]
        lines[at] = {" ": "+", "+": "-", "-": " "}[lines[at][0]] + lines[at][1:]
    elif how == "outdent":
        for i in body:
            if lines[i][1:5] == "    ":
                lines[i] = lines[i][0] + lines[i][5:]
    return "\n".join(lines)


def describe(report: EditReport) -> str:
    return report.refusal() if report.status == "refused" else f"{report.status}: {report.hunks}"


@PROPERTY
@given(
    pair=text_pairs(),
    how=st.sampled_from(["as-is", "no-line-numbers", "drop-line", "flip-sign", "outdent"]),
    pick=st.integers(0, 1000),
)
def test_a_dry_run_never_writes_anything(pair: tuple[str, str], how: str, pick: int) -> None:
    old, new = pair
    patch = mangle(unified(old, new), how, pick)
    with repo(old) as root:
        before = snapshot(root)
        try:
            report = run_edit(root, patch=patch, dry_run=True)
        except ToolInputError:
            pass  # a mangled patch may be no patch at all: refusing to read it is fine, writing is not
        else:
            assert report.dry_run is True
        assert snapshot(root) == before


@PROPERTY
@given(pair=text_pairs(fresh=True), pick=st.integers(0, 1000))
def test_a_refused_edit_never_writes_anything(pair: tuple[str, str], pick: int) -> None:
    old, new = pair
    lines = unified(old, new).split("\n")
    removed = [i for i, line in enumerate(lines) if line.startswith("-") and not line.startswith("---")]
    assume(removed)
    lines[removed[pick % len(removed)]] = "-" + CORRUPT_LINE
    with repo(old) as root:
        before = snapshot(root)
        report = run_edit(root, patch="\n".join(lines))
        assert report.status == "refused", describe(report)
        assert report.problems
        assert snapshot(root) == before


@PROPERTY
@given(pair=text_pairs())
def test_a_difflib_patch_then_its_reverse_restores_the_tree_byte_for_byte(pair: tuple[str, str]) -> None:
    old, new = pair
    with repo(old) as root:
        before = {path: data for path, (data, _, _) in snapshot(root).items()}
        forward = run_edit(root, patch=unified(old, new))
        assert forward.status == "applied", describe(forward)
        assert (root / PATH).read_bytes() == new.encode("utf-8")
        backward = run_edit(root, patch=unified(new, old))
        assert backward.status == "applied", describe(backward)
        assert {path: data for path, (data, _, _) in snapshot(root).items()} == before


AMBIGUITY = ("times in the file", "about equally well", "fits the file in two ways")


@PROPERTY
@given(
    pair=st.one_of(
        text_pairs(),
        st.tuples(lines_st, lines_st, st.booleans()).map(lambda t: (as_text(t[0], t[2]), as_text(t[1], t[2]))),
    ),
    crlf=st.booleans(),
)
def test_a_difflib_patch_applies_exactly_or_is_refused_as_ambiguous(pair: tuple[str, str], crlf: bool) -> None:
    old, new = pair
    assume(old != new)
    if crlf:
        assume("\n" in old)  # a file with no line ending at all has no CRLF style to keep
        old_bytes, expected = old.replace("\n", "\r\n").encode(), new.replace("\n", "\r\n").encode()
    else:
        old_bytes, expected = old.encode(), new.encode()
    with repo(old_bytes) as root:
        report = run_edit(root, patch=unified(old, new))
        result = (root / PATH).read_bytes()
        if report.status == "refused":
            assert any(cause in p.reason for p in report.problems for cause in AMBIGUITY), describe(report)
            assert result == old_bytes
        else:
            assert report.status == "applied", describe(report)
            assert result == expected, describe(report)
        assert (root / OTHER).read_bytes() == OTHER_TEXT


def test_a_patch_ending_in_a_no_newline_marker_is_not_taken_as_already_applied() -> None:
    old = "import os\n\nimport os"
    patch = f"--- a/{PATH}\n+++ b/{PATH}\n@@ -1,3 +1 @@\n-import os\n-\n import os\n{NO_EOL}\n"  # as git writes it
    with repo(old) as root:
        report = run_edit(root, patch=patch)
        assert report.status == "applied", describe(report)
        assert (root / PATH).read_text() == "import os"


def test_a_zero_context_difflib_patch_inserts_after_the_line_its_header_names() -> None:
    old, new = "a = 1\nb = 2\nc = 3\n", "a = 1\nadded = True\nb = 2\nc = 3\n"
    patch = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{PATH}", f"b/{PATH}", n=0))
    assert "@@ -1,0 +2 @@" in patch
    with repo(old) as root:
        report = run_edit(root, patch=patch)
        assert report.status == "applied", describe(report)
        assert (root / PATH).read_text() == new
