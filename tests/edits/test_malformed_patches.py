"""Patches broken the ways models break them still apply exactly as meant, or are refused without a write.

Every patch below is written out in full. Lines ending in `$` keep the whitespace before the `$`
(as `cat -A` shows it), so blank context lines (` $`) and trailing spaces are visible here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools.edits.engine import run_edit

PATH = "src/shop/totals.py"

_TEMPLATE = '''"""Order totals for the shop: subtotals, discounts and tax."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

TAX_RATE = Decimal("0.20")  $
CENTS = Decimal("0.01")


@dataclass
class Line:
    sku: str
    quantity: int
    unit_price: Decimal


def subtotal(lines: list[Line]) -> Decimal:
    total = Decimal(0)
    for line in lines:
        if line.quantity <= 0:
            continue
        total += line.unit_price * line.quantity
    return total


def discounted_subtotal(lines: list[Line], percent: int) -> Decimal:
    total = Decimal(0)
    for line in lines:
        if line.quantity <= 0:
            continue
        total += line.unit_price * line.quantity
    return total * (100 - percent) / 100


def tax(amount: Decimal) -> Decimal:
    return (amount * TAX_RATE).quantize(CENTS)


class Cart:
    def __init__(self) -> None:
        self.lines: list[Line] = []

    def add(self, sku: str, quantity: int, unit_price: Decimal) -> None:
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        self.lines.append(Line(sku, quantity, unit_price))

    def remove(self, sku: str) -> None:
        self.lines = [line for line in self.lines if line.sku != sku]

    def total(self, percent: int = 0) -> Decimal:
        amount = discounted_subtotal(self.lines, percent)
        return amount + tax(amount)
'''


def unmark(text: str) -> str:
    """`text` with each line's closing `$` removed (the whitespace before it stays)."""
    return re.sub(r"\$$", "", text, flags=re.MULTILINE)


SOURCE = unmark(_TEMPLATE)


def replaced(source: str, *pairs: tuple[str, str]) -> str:
    """`source` with each `old` (which must occur exactly once) replaced by `new`."""
    for old, new in pairs:
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    return source


# The percent check added to discounted_subtotal.
VALIDATED = replaced(
    SOURCE,
    (
        "def discounted_subtotal(lines: list[Line], percent: int) -> Decimal:\n",
        "def discounted_subtotal(lines: list[Line], percent: int) -> Decimal:\n"
        "    if not 0 <= percent <= 100:\n"
        '        raise ValueError("percent must be between 0 and 100")\n',
    ),
)

# Tax rounded half up: the import and the tax function (two hunks 30 lines apart).
ROUNDED = replaced(
    SOURCE,
    ("from decimal import Decimal\n", "from decimal import ROUND_HALF_UP, Decimal\n"),
    (".quantize(CENTS)\n", ".quantize(CENTS, rounding=ROUND_HALF_UP)\n"),
)

# Cart.remove refuses an unknown sku (a change inside a class, indented 8 spaces).
REMOVE_CHECKED = replaced(
    SOURCE,
    (
        "    def remove(self, sku: str) -> None:\n",
        "    def remove(self, sku: str) -> None:\n"
        "        if all(line.sku != sku for line in self.lines):\n"
        "            raise KeyError(sku)\n",
    ),
)

# The last line, changed in a file that has no final newline.
LAST_LINE_ROUNDED = replaced(
    SOURCE, ("        return amount + tax(amount)\n", "        return (amount + tax(amount)).quantize(CENTS)\n")
)

# Cart.count appended after the last line.
COUNTED = SOURCE + "\n    def count(self) -> int:\n        return sum(line.quantity for line in self.lines)\n"

VALIDATE_HUNK = unmark("""\
@@ -25,7 +25,9 @@ def subtotal(lines: list[Line]) -> Decimal:
     return total
 $
 $
 def discounted_subtotal(lines: list[Line], percent: int) -> Decimal:
+    if not 0 <= percent <= 100:
+        raise ValueError("percent must be between 0 and 100")
     total = Decimal(0)
     for line in lines:
         if line.quantity <= 0:
""")

HEADERS = f"--- a/{PATH}\n+++ b/{PATH}\n"
VALIDATE_PATCH = HEADERS + VALIDATE_HUNK

ROUND_PATCH = unmark(f"""\
diff --git a/{PATH} b/{PATH}
index 3b18e51..a9c2f3d 100644
--- a/{PATH}
+++ b/{PATH}
@@ -3,7 +3,7 @@
 from __future__ import annotations
 $
 from dataclasses import dataclass
-from decimal import Decimal
+from decimal import ROUND_HALF_UP, Decimal
 $
 TAX_RATE = Decimal("0.20")  $
 CENTS = Decimal("0.01")
@@ -35,7 +35,7 @@ def discounted_subtotal(lines: list[Line], percent: int) -> Decimal:
 $
 $
 def tax(amount: Decimal) -> Decimal:
-    return (amount * TAX_RATE).quantize(CENTS)
+    return (amount * TAX_RATE).quantize(CENTS, rounding=ROUND_HALF_UP)
 $
 $
 class Cart:
""")

CASES = [
    pytest.param(SOURCE, ROUND_PATCH, ROUNDED, None, id="correct-git-patch"),
    pytest.param(
        SOURCE,
        VALIDATE_PATCH.replace("@@ -25,7 +25,9 @@", "@@ -12,7 +12,9 @@"),
        VALIDATED,
        None,
        id="wrong-line-numbers",
    ),
    pytest.param(
        SOURCE,
        HEADERS
        + """\
@@ ... @@
 def discounted_subtotal(lines: list[Line], percent: int) -> Decimal:
+    if not 0 <= percent <= 100:
+        raise ValueError("percent must be between 0 and 100")
     total = Decimal(0)
     for line in lines:
""",
        VALIDATED,
        None,
        id="no-line-numbers",
    ),
    pytest.param(
        SOURCE,
        ROUND_PATCH.replace("@@ -3,7 +3,7 @@", "@@ -3,2 +3,11 @@").replace("@@ -35,7 +35,7 @@", "@@ -35,9 +35,4 @@"),
        ROUNDED,
        None,
        id="wrong-hunk-counts",
    ),
    pytest.param(
        SOURCE,
        HEADERS
        + """\
@@ -28,6 +28,8 @@
 def discounted_subtotal(lines: list[Line], percent: int) -> Decimal:
+    if not 0 <= percent <= 100:
+        raise ValueError("percent must be between 0 and 100")
     total = Decimal(0)
     for line in lines:
             continue
         total += line.unit_price * line.quantity
""",
        VALIDATED,
        None,
        id="dropped-context-line",
    ),
    pytest.param(
        SOURCE,
        VALIDATE_PATCH.replace("-> Decimal:\n+", "-> Decimal:  # percent off\n+"),
        VALIDATED,
        "differs from the file's line",
        id="misquoted-context-edge",
    ),
    pytest.param(
        SOURCE,
        HEADERS
        + """\
@@ -28,4 +28,6 @@
 def discounted_subtotal(lines: list[Line], percent: int) -> Decimal:
+    if not 0 <= percent <= 100:
+        raise ValueError("percent must be between 0 and 100")
     total = Decimal(0)
     for line in lines:  # each order line
         if line.quantity <= 0:
""",
        VALIDATED,
        "differs from the file's line",
        id="misquoted-context-inner",
    ),
    pytest.param(
        SOURCE,
        ROUND_PATCH.replace("\n \n", "\n\n").replace('"0.20")  \n', '"0.20")\n'),
        ROUNDED,
        None,
        id="blank-context-without-space-and-trailing-whitespace-stripped",
    ),
    pytest.param(
        SOURCE,
        HEADERS
        + unmark("""\
@@ -48,6 +48,8 @@
     self.lines.append(Line(sku, quantity, unit_price))
 $
 def remove(self, sku: str) -> None:
+    if all(line.sku != sku for line in self.lines):
+        raise KeyError(sku)
     self.lines = [line for line in self.lines if line.sku != sku]
 $
 def total(self, percent: int = 0) -> Decimal:
"""),
        REMOVE_CHECKED,
        "indented added lines by 4 more space(s)",
        id="whole-hunk-outdented",
    ),
    pytest.param(
        SOURCE,
        VALIDATE_PATCH.replace('+        raise ValueError("percent', '         raise ValueError("percent'),
        VALIDATED,
        "added it as if marked '+'",
        id="added-line-missing-plus",
    ),
    pytest.param(
        SOURCE,
        HEADERS
        + unmark("""\
@@ -5,34 +5,34 @@
 from dataclasses import dataclass
-from decimal import Decimal
+from decimal import ROUND_HALF_UP, Decimal
 $
 TAX_RATE = Decimal("0.20")  $
 CENTS = Decimal("0.01")
 def tax(amount: Decimal) -> Decimal:
-    return (amount * TAX_RATE).quantize(CENTS)
+    return (amount * TAX_RATE).quantize(CENTS, rounding=ROUND_HALF_UP)
 $
 $
 class Cart:
"""),
        ROUNDED,
        "that the hunk leaves out",
        id="two-hunks-merged-lines-between-omitted",
    ),
    pytest.param(SOURCE, VALIDATE_PATCH.replace("\n", "\r\n"), VALIDATED, None, id="crlf-patch-on-lf-file"),
    pytest.param(
        SOURCE.replace("\n", "\r\n"),
        VALIDATE_PATCH,
        VALIDATED.replace("\n", "\r\n"),
        None,
        id="lf-patch-on-crlf-file",
    ),
    pytest.param(
        SOURCE, ROUND_PATCH.replace(" a/src", " src").replace(" b/src", " src"), ROUNDED, None, id="no-a-b-prefixes"
    ),
    pytest.param(SOURCE, VALIDATE_PATCH.rstrip("\n"), VALIDATED, None, id="no-trailing-newline"),
    pytest.param(
        SOURCE,
        "I added a range check so bad discounts fail loudly:\n\n```diff\n"
        + VALIDATE_PATCH
        + "```\n\nThe rest of the file is unchanged.\n",
        VALIDATED,
        None,
        id="markdown-fence-with-commentary",
    ),
    pytest.param(
        SOURCE.rstrip("\n"),
        HEADERS
        + """\
@@ -53,3 +53,3 @@
     def total(self, percent: int = 0) -> Decimal:
         amount = discounted_subtotal(self.lines, percent)
-        return amount + tax(amount)
\\ No newline at end of file
+        return (amount + tax(amount)).quantize(CENTS)
\\ No newline at end of file
""",
        LAST_LINE_ROUNDED.rstrip("\n"),
        None,
        id="no-newline-at-end-kept",
    ),
    pytest.param(
        SOURCE.rstrip("\n"),
        HEADERS
        + """\
@@ -53,3 +53,6 @@
     def total(self, percent: int = 0) -> Decimal:
         amount = discounted_subtotal(self.lines, percent)
-        return amount + tax(amount)
\\ No newline at end of file
+        return amount + tax(amount)
+
+    def count(self) -> int:
+        return sum(line.quantity for line in self.lines)
""",
        COUNTED,
        None,
        id="no-newline-at-end-fixed-while-appending",
    ),
    pytest.param(
        SOURCE,
        HEADERS
        + """\
@@ -54,2 +54,2 @@
         amount = discounted_subtotal(self.lines, percent)
-        return amount + tax(amount)
+        return (amount + tax(amount)).quantize(CENTS)
\\ No newline at end of file
""",
        LAST_LINE_ROUNDED.rstrip("\n"),
        None,
        id="no-newline-at-end-introduced",
    ),
]


def write(root: Path, text: str, path: str = PATH) -> Path:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(text.encode("utf-8"))
    return target


@pytest.mark.parametrize(("source", "patch", "expected", "note"), CASES)
def test_a_malformed_patch_applies_exactly_as_the_model_meant(
    tmp_path: Path, source: str, patch: str, expected: str, note: str | None
) -> None:
    target = write(tmp_path, source)
    report = run_edit(tmp_path, patch=patch)
    assert report.status == "applied", report.refusal()
    assert target.read_bytes() == expected.encode("utf-8")
    assert [f.path for f in report.files] == [PATH]
    if note is not None:
        assert any(note in text for hunk in report.hunks for text in hunk.notes), report.hunks


def test_a_correct_patch_is_placed_exactly_where_its_header_says(tmp_path: Path) -> None:
    write(tmp_path, SOURCE)
    report = run_edit(tmp_path, patch=ROUND_PATCH)
    assert [(h.hunk, h.status, h.method, h.line, h.notes) for h in report.hunks] == [
        (1, "applied", "exact", 3, []),
        (2, "applied", "exact", 35, []),
    ]
    assert report.files[0].action == "modified" and (report.files[0].added, report.files[0].removed) == (2, 2)


REFUSALS = [
    pytest.param(
        HEADERS
        + """\
@@ -37,3 +37,3 @@
 def tax(amount: Decimal) -> Decimal:
-    return (amount * TAX_RATE).quantize(Decimal("0.01"))
+    return (amount * TAX_RATE).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
""",
        ["a line it removes is not in the file", 'quantize(Decimal("0.01"))'],
        id="removed-line-not-in-file",
    ),
    pytest.param(
        HEADERS
        + """\
@@ ... @@
     total = Decimal(0)
     for line in lines:
-        if line.quantity <= 0:
+        if line.quantity <= 0 or line.unit_price < 0:
             continue
""",
        ["occur 2 times", "lines 20, 29", "add a few more context lines"],
        id="ambiguous-context-without-line-numbers",
    ),
    pytest.param(
        HEADERS
        + """\
@@ -19,3 +19,4 @@
 def subtotal(lines: list[Line]) -> Decimal:
+    \"\"\"The order's value before discounts and tax.\"\"\"
     for line in lines:
         if line.quantity <= 0:
""",
        ["its added lines sit next to file lines 20-20 that the hunk leaves out", "include those lines as context"],
        id="added-lines-between-context-lines-not-adjacent-in-the-file",
    ),
]


@pytest.mark.parametrize(("patch", "causes"), REFUSALS)
def test_a_patch_that_cannot_be_placed_safely_is_refused_and_nothing_is_written(
    tmp_path: Path, patch: str, causes: list[str]
) -> None:
    target = write(tmp_path, SOURCE)
    report = run_edit(tmp_path, patch=patch)
    assert report.status == "refused"
    assert target.read_bytes() == SOURCE.encode("utf-8")
    assert len(report.problems) == 1 and report.problems[0].file == PATH
    for cause in causes:
        assert cause in report.problems[0].reason
    assert report.refusal().startswith("edit refused; nothing was changed.")


def test_a_refusal_for_a_removed_line_not_in_the_file_shows_the_closest_real_lines(tmp_path: Path) -> None:
    write(tmp_path, SOURCE)
    report = run_edit(tmp_path, patch=REFUSALS[0].values[0])
    assert report.status == "refused"
    closest = report.problems[0].closest
    assert closest is not None
    assert "37: def tax(amount: Decimal) -> Decimal:" in closest
    assert "38:     return (amount * TAX_RATE).quantize(CENTS)" in closest


def test_an_ambiguous_refusal_shows_the_first_candidate_numbered(tmp_path: Path) -> None:
    write(tmp_path, SOURCE)
    report = run_edit(tmp_path, patch=REFUSALS[1].values[0])
    closest = report.problems[0].closest
    assert closest is not None
    assert "20:     total = Decimal(0)" in closest.splitlines()
    assert "closest lines in src/shop/totals.py:" in report.refusal()


def test_applying_the_same_patch_twice_reports_already_applied_and_changes_nothing(tmp_path: Path) -> None:
    target = write(tmp_path, SOURCE)
    first = run_edit(tmp_path, patch=ROUND_PATCH)
    assert first.status == "applied"
    after_first = target.read_bytes()
    assert after_first == ROUNDED.encode("utf-8")
    mtime = target.stat().st_mtime_ns

    second = run_edit(tmp_path, patch=ROUND_PATCH)
    assert second.status == "already_applied"
    assert {h.status for h in second.hunks} == {"already_applied"}
    assert all("already applied" in note for h in second.hunks for note in h.notes)
    assert second.diff == "" and second.problems == []
    assert target.read_bytes() == after_first and target.stat().st_mtime_ns == mtime


def test_a_multi_file_patch_whose_second_file_fails_leaves_the_first_file_untouched(tmp_path: Path) -> None:
    totals = write(tmp_path, SOURCE)
    version = write(tmp_path, '"""The shop."""\n\n__version__ = "1.4.0"\n', "src/shop/__init__.py")
    patch = (
        VALIDATE_PATCH
        + """\
--- a/src/shop/__init__.py
+++ b/src/shop/__init__.py
@@ -1,3 +1,3 @@
 \"\"\"The shop.\"\"\"

-__version__ = "1.3.0"
+__version__ = "1.5.0"
"""
    )
    report = run_edit(tmp_path, patch=patch)
    assert report.status == "refused"
    assert totals.read_bytes() == SOURCE.encode("utf-8")
    assert version.read_bytes() == b'"""The shop."""\n\n__version__ = "1.4.0"\n'
    assert [(p.file, p.hunk) for p in report.problems] == [("src/shop/__init__.py", 1)]
    assert "1.3.0" in report.problems[0].reason
    assert [(h.file, h.status) for h in report.hunks] == [(PATH, "applied"), ("src/shop/__init__.py", "failed")]
    assert "1 other hunk(s) would have applied" in report.refusal()
