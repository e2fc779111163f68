"""The edit engine stays inside its tree, refuses what it cannot change safely, and handles every input shape."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from tools.edits.blocks import EditBlock
from tools.edits.confined import check_path
from tools.edits.engine import EditLimits, run_edit
from tools.errors import ToolInputError

GREET = '''"""Greetings."""


def greet(name: str) -> str:
    return f"Hello, {name}!"


def shout(name: str) -> str:
    return greet(name).upper()
'''

GREET_PATCH = """\
--- a/src/a.py
+++ b/src/a.py
@@ -3,5 +3,5 @@


 def greet(name: str) -> str:
-    return f"Hello, {name}!"
+    return f"Hello, {name.strip()}!"


 def shout(name: str) -> str:
"""

GREETED = GREET.replace('{name}!"', '{name.strip()}!"')


def snapshot(root: Path) -> dict[str, tuple[bytes | str, int, int]]:
    """Every entry under `root`: its bytes (or link target), mode and mtime."""
    entries: dict[str, tuple[bytes | str, int, int]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if path.is_symlink():
            content: bytes | str = os.readlink(path)
        elif path.is_file():
            content = path.read_bytes()
        else:
            content = "<dir>"
        entries[str(path.relative_to(root))] = (content, st.st_mode, st.st_mtime_ns)
    return entries


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A repository at tmp_path/repo with src/a.py, src/b.py, .git/config and .shipway/x; outside.py beside it."""
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "src" / "a.py").write_text(GREET)
    (root / "src" / "b.py").write_text("VALUE = 1\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n\tbare = false\n")
    (root / ".shipway").mkdir()
    (root / ".shipway" / "x").write_text("state\n")
    (tmp_path / "outside.py").write_text("SECRET = 1\n")
    return root


def modify_patch(path: str, old: str = "VALUE = 1", new: str = "VALUE = 2") -> str:
    return f"--- {path}\n+++ {path}\n@@ -1 +1 @@\n-{old}\n+{new}\n"


# --- path confinement -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "cause"),
    [
        pytest.param("ABSOLUTE", "is absolute", id="absolute"),
        pytest.param("../outside.py", "goes outside the repository", id="dot-dot"),
        pytest.param("src/../../outside.py", "goes outside the repository", id="dot-dot-inside"),
        pytest.param(".git/config", "inside .git/", id="git-config"),
        pytest.param(".GIT/config", "inside .GIT/", id="git-config-other-case"),
        pytest.param(".shipway/x", "inside .shipway/", id="shipway"),
        pytest.param("src/.git/hooks/pre-commit", "inside .git/", id="nested-git"),
    ],
)
def test_an_edit_to_a_path_outside_the_tree_or_in_a_forbidden_directory_is_refused(
    tree: Path, path: str, cause: str
) -> None:
    if path == "ABSOLUTE":
        path = str(tree.parent / "outside.py")
    before = snapshot(tree.parent)
    for patch in (
        modify_patch(path, "SECRET = 1", "SECRET = 2"),
        modify_patch(path, "[core]", "[core]\n\tfsmonitor = evil"),
        f"--- /dev/null\n+++ {path}\n@@ -0,0 +1 @@\n+planted\n",
    ):
        report = run_edit(tree, patch=patch)
        assert report.status == "refused"
        assert any(cause in problem.reason for problem in report.problems), report.problems
    report = run_edit(tree, blocks=[EditBlock(path=path, content="planted\n")])
    assert report.status == "refused" and cause in report.problems[0].reason
    assert snapshot(tree.parent) == before


@pytest.mark.parametrize(
    ("given", "clean"),
    [("src/a.py", "src/a.py"), ("./src/a.py", "src/a.py"), ("src//a.py", "src/a.py"), ("src/./a.py", "src/a.py")],
)
def test_check_path_normalises_a_repo_relative_path(given: str, clean: str) -> None:
    assert check_path(given) == clean


@pytest.mark.parametrize(
    ("given", "cause"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("/etc/passwd", "absolute"),
        ("~/.ssh/id_rsa", "absolute"),
        ("a/../../b", "'..'"),
        (".git/HEAD", ".git/"),
        ("x/.shipway/state", ".shipway/"),
        (".", "names the repository root"),
        ("a\x00b", "NUL"),
        ("a" * 1025, "over 1024"),
    ],
)
def test_check_path_refuses_paths_an_edit_may_not_name(given: str, cause: str) -> None:
    with pytest.raises(ToolInputError) as caught:
        check_path(given)
    assert cause in str(caught.value)


def test_an_edit_through_a_symlink_to_a_file_outside_is_refused_and_the_outside_file_is_unchanged(
    tree: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    outside = elsewhere / "target.py"
    outside.write_text("VALUE = 1\n")
    (tree / "src" / "link.py").symlink_to(outside)
    before, outside_before = snapshot(tree), snapshot(elsewhere)

    for report in (
        run_edit(tree, patch=modify_patch("src/link.py")),
        run_edit(tree, patch="src/link.py\n<<<<<<< SEARCH\nVALUE = 1\n=======\nVALUE = 2\n>>>>>>> REPLACE\n"),
        run_edit(tree, blocks=[EditBlock(path="src/link.py", content="VALUE = 2\n")]),
        run_edit(tree, blocks=[EditBlock(path="src/link.py", delete=True)]),
        run_edit(tree, blocks=[EditBlock(path="src/link.py", move_to="src/moved.py")]),
    ):
        assert report.status == "refused"
        assert "src/link.py is a symlink" in report.problems[0].reason
    assert outside.read_text() == "VALUE = 1\n"
    assert snapshot(tree) == before and snapshot(elsewhere) == outside_before


def test_an_edit_through_a_symlinked_directory_is_refused_and_nothing_is_written_outside(
    tree: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "mod.py").write_text("VALUE = 1\n")
    (tree / "pkg").symlink_to(elsewhere, target_is_directory=True)
    before, outside_before = snapshot(tree), snapshot(elsewhere)

    for report in (
        run_edit(tree, patch=modify_patch("pkg/mod.py")),
        run_edit(tree, patch="--- /dev/null\n+++ b/pkg/new.py\n@@ -0,0 +1 @@\n+planted = True\n"),
        run_edit(tree, blocks=[EditBlock(path="pkg/new.py", content="planted = True\n")]),
        run_edit(tree, blocks=[EditBlock(path="src/b.py", move_to="pkg/b.py")]),
    ):
        assert report.status == "refused"
        assert "pkg is a symlink or a file, not a directory" in report.problems[0].reason
    assert snapshot(tree) == before and snapshot(elsewhere) == outside_before


# --- input limits -----------------------------------------------------------------------------------------------


def test_a_binary_file_is_refused(tree: Path) -> None:
    logo = tree / "logo.png"
    logo.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    for report in (
        run_edit(tree, patch=modify_patch("logo.png", "PNG", "JPG")),
        run_edit(tree, patch="logo.png\n<<<<<<< SEARCH\nIHDR\n=======\nIEND\n>>>>>>> REPLACE\n"),
    ):
        assert report.status == "refused"
        assert "logo.png is a binary file" in report.problems[0].reason
    assert logo.read_bytes() == b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def test_a_file_over_the_size_limit_is_refused(tree: Path) -> None:
    big = tree / "src" / "big.py"
    big.write_text("VALUE = 1\n" + "# padding\n" * 20)
    before = snapshot(tree)
    report = run_edit(tree, patch=modify_patch("src/big.py"), limits=EditLimits(max_file_bytes=100))
    assert report.status == "refused"
    assert "src/big.py is 210 bytes; the edit engine changes files up to 100 bytes" in report.problems[0].reason
    assert snapshot(tree) == before


def test_new_content_over_the_size_limit_is_refused(tree: Path) -> None:
    before = snapshot(tree)
    report = run_edit(
        tree, blocks=[EditBlock(path="src/c.py", content="x" * 101)], limits=EditLimits(max_file_bytes=100)
    )
    assert report.status == "refused"
    assert "the new content of src/c.py is 101 bytes; the limit is 100" in report.problems[0].reason
    assert snapshot(tree) == before


def test_a_patch_over_the_input_limit_raises_tool_input_error(tree: Path) -> None:
    patch = GREET_PATCH + "# " + "x" * 200 + "\n"
    with pytest.raises(ToolInputError, match=r"the patch is 381 characters; the limit is 300\. Split the change"):
        run_edit(tree, patch=patch, limits=EditLimits(max_input_chars=300))
    with pytest.raises(ToolInputError, match="the blocks hold 301 characters; the limit is 300"):
        run_edit(tree, blocks=[EditBlock(path="src/c.py", content="x" * 301)], limits=EditLimits(max_input_chars=300))
    assert (tree / "src" / "a.py").read_text() == GREET and not (tree / "src" / "c.py").exists()


def test_an_edit_touching_more_files_than_the_limit_raises_tool_input_error(tree: Path) -> None:
    blocks = [EditBlock(path=f"src/f{i}.py", content="x\n") for i in range(3)]
    with pytest.raises(ToolInputError, match="the edit touches 3 files; the limit is 2"):
        run_edit(tree, blocks=blocks, limits=EditLimits(max_files=2))
    assert not list((tree / "src").glob("f*.py"))


def test_a_nul_character_in_the_patch_raises_tool_input_error(tree: Path) -> None:
    with pytest.raises(ToolInputError, match="NUL character"):
        run_edit(tree, patch=GREET_PATCH.replace("strip()", "strip()\x00"))
    assert (tree / "src" / "a.py").read_text() == GREET


@pytest.mark.parametrize(
    ("patch", "advice"),
    [
        pytest.param("", "send a unified diff (`--- a/PATH`, `+++ b/PATH`", id="empty"),
        pytest.param("  \n\n", "send a unified diff (`--- a/PATH`, `+++ b/PATH`", id="blank"),
        pytest.param("Sure! I changed greet to strip the name.", "or SEARCH/REPLACE blocks", id="prose"),
        pytest.param("```diff\n```\n", "no file changes found in the patch", id="empty-fence"),
        pytest.param("--- a/src/a.py\n+++ b/src/a.py\n", "no file changes found in the patch", id="headers-only"),
        pytest.param("@@ -1 +1 @@\n-a\n+b\n", "start each file with `--- a/PATH` and `+++ b/PATH`", id="no-headers"),
        pytest.param("src/a.py\n<<<<<<< SEARCH\ngreet\n", "has no ======= line", id="search-without-divider"),
        pytest.param(
            "src/a.py\n<<<<<<< SEARCH\ngreet\n=======\nhi\n", "has no >>>>>>> REPLACE line", id="search-without-end"
        ),
        pytest.param("<<<<<<< SEARCH\ngreet\n=======\nhi\n>>>>>>> REPLACE\n", "has no file path", id="block-no-path"),
    ],
)
def test_an_empty_or_garbage_patch_raises_tool_input_error_saying_what_to_send(
    tree: Path, patch: str, advice: str
) -> None:
    before = snapshot(tree)
    with pytest.raises(ToolInputError) as caught:
        run_edit(tree, patch=patch)
    assert advice in str(caught.value)
    assert snapshot(tree) == before


def test_sending_both_or_neither_of_patch_and_blocks_raises_tool_input_error(tree: Path) -> None:
    with pytest.raises(ToolInputError, match="send exactly one of `patch`"):
        run_edit(tree)
    with pytest.raises(ToolInputError, match="send exactly one of `patch`"):
        run_edit(tree, patch=GREET_PATCH, blocks=[EditBlock(path="src/b.py", delete=True)])
    with pytest.raises(ToolInputError, match="send between 1 and 200 blocks, got 0"):
        run_edit(tree, blocks=[])


# --- dry runs and file operations -------------------------------------------------------------------------------


def test_a_dry_run_reports_the_diff_and_applied_but_changes_nothing_on_disk(tree: Path) -> None:
    before = snapshot(tree)
    report = run_edit(tree, patch=GREET_PATCH, dry_run=True)
    assert report.status == "applied" and report.dry_run is True
    assert '-    return f"Hello, {name}!"\n+    return f"Hello, {name.strip()}!"\n' in report.diff
    assert report.diff.startswith("--- a/src/a.py\n+++ b/src/a.py\n")
    assert [(f.path, f.action, f.added, f.removed) for f in report.files] == [("src/a.py", "modified", 1, 1)]
    created = run_edit(tree, patch="--- /dev/null\n+++ b/new/dir/c.py\n@@ -0,0 +1 @@\n+C = 3\n", dry_run=True)
    assert created.status == "applied" and "+C = 3" in created.diff
    assert snapshot(tree) == before


def test_creating_a_file_creates_its_parent_directories(tree: Path) -> None:
    patch = "diff --git a/pkg/sub/new.py b/pkg/sub/new.py\nnew file mode 100644\n--- /dev/null\n+++ b/pkg/sub/new.py\n"
    patch += "@@ -0,0 +1,2 @@\n+def new() -> int:\n+    return 1\n"
    report = run_edit(tree, patch=patch)
    assert report.status == "applied"
    assert (tree / "pkg" / "sub" / "new.py").read_bytes() == b"def new() -> int:\n    return 1\n"
    assert stat.S_IMODE((tree / "pkg" / "sub" / "new.py").stat().st_mode) == 0o644
    assert [(f.path, f.action, f.added) for f in report.files] == [("pkg/sub/new.py", "created", 2)]
    again = run_edit(tree, patch=patch)
    assert again.status == "already_applied"


def test_creating_a_file_that_exists_with_other_content_is_refused(tree: Path) -> None:
    report = run_edit(tree, patch="--- /dev/null\n+++ b/src/b.py\n@@ -0,0 +1 @@\n+VALUE = 3\n")
    assert report.status == "refused"
    assert "src/b.py already exists" in report.problems[0].reason
    assert (tree / "src" / "b.py").read_text() == "VALUE = 1\n"


def test_deleting_a_file(tree: Path) -> None:
    patch = "diff --git a/src/b.py b/src/b.py\ndeleted file mode 100644\nindex 1111111..0000000\n"
    patch += "--- a/src/b.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-VALUE = 1\n"
    report = run_edit(tree, patch=patch)
    assert report.status == "applied"
    assert not (tree / "src" / "b.py").exists() and (tree / "src" / "a.py").read_text() == GREET
    assert [(f.path, f.action, f.removed) for f in report.files] == [("src/b.py", "deleted", 1)]
    assert run_edit(tree, patch=patch).status == "already_applied"


def test_deleting_a_file_whose_content_differs_from_the_patch_is_refused(tree: Path) -> None:
    report = run_edit(tree, patch="--- a/src/b.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-VALUE = 7\n")
    assert report.status == "refused"
    assert "src/b.py does not hold the lines the patch deletes" in report.problems[0].reason
    assert (tree / "src" / "b.py").read_text() == "VALUE = 1\n"


def test_renaming_a_file_with_a_git_rename_header(tree: Path) -> None:
    patch = (
        "diff --git a/src/b.py b/lib/values.py\nsimilarity index 100%\nrename from src/b.py\nrename to lib/values.py\n"
    )
    report = run_edit(tree, patch=patch)
    assert report.status == "applied"
    assert not (tree / "src" / "b.py").exists()
    assert (tree / "lib" / "values.py").read_text() == "VALUE = 1\n"
    assert [(f.path, f.action, f.old_path) for f in report.files] == [("lib/values.py", "renamed", "src/b.py")]


def test_renaming_and_changing_a_file_in_one_diff(tree: Path) -> None:
    patch = "diff --git a/src/b.py b/src/c.py\nsimilarity index 50%\nrename from src/b.py\nrename to src/c.py\n"
    patch += "--- a/src/b.py\n+++ b/src/c.py\n@@ -1 +1 @@\n-VALUE = 1\n+VALUE = 2\n"
    report = run_edit(tree, patch=patch)
    assert report.status == "applied"
    assert not (tree / "src" / "b.py").exists() and (tree / "src" / "c.py").read_text() == "VALUE = 2\n"


def test_renaming_onto_an_existing_file_is_refused(tree: Path) -> None:
    before = snapshot(tree)
    report = run_edit(tree, blocks=[EditBlock(path="src/b.py", move_to="src/a.py")])
    assert report.status == "refused"
    assert "cannot rename src/b.py to src/a.py: src/a.py already exists" in report.problems[0].reason
    assert snapshot(tree) == before


def test_editing_a_missing_file_is_refused_with_advice(tree: Path) -> None:
    report = run_edit(tree, patch=modify_patch("src/missing.py"))
    assert report.status == "refused"
    assert "there is no file src/missing.py" in report.problems[0].reason
    assert "--- /dev/null" in report.problems[0].reason


# --- SEARCH/REPLACE text and structured blocks ------------------------------------------------------------------


SEARCH_REPLACE = """\
src/a.py
<<<<<<< SEARCH
    return f"Hello, {name}!"
=======
    return f"Hello, {name.strip()}!"
>>>>>>> REPLACE
"""


def test_a_search_replace_block_changes_the_lines_it_names(tree: Path) -> None:
    report = run_edit(tree, patch="Here is the change:\n\n" + SEARCH_REPLACE)
    assert report.status == "applied"
    assert (tree / "src" / "a.py").read_text() == GREETED
    assert [(h.file, h.status, h.method, h.line) for h in report.hunks] == [("src/a.py", "applied", "exact", 5)]


def test_a_search_replace_block_inside_a_language_fence_takes_its_path_from_the_line_before_the_fence(
    tree: Path,
) -> None:
    fenced = SEARCH_REPLACE.replace("src/a.py\n", "src/a.py\n```python\n") + "```\n"
    report = run_edit(tree, patch="Here is the change:\n\n" + fenced)
    assert report.status == "applied", report.refusal()
    assert (tree / "src" / "a.py").read_text() == GREETED


def test_a_search_block_that_occurs_twice_is_refused_naming_both_lines(tree: Path) -> None:
    (tree / "src" / "twice.py").write_text("def a():\n    return 0\n\n\ndef b():\n    return 0\n")
    report = run_edit(
        tree, patch="src/twice.py\n<<<<<<< SEARCH\n    return 0\n=======\n    return 1\n>>>>>>> REPLACE\n"
    )
    assert report.status == "refused"
    assert "2 times" in report.problems[0].reason and "lines 2, 6" in report.problems[0].reason
    assert (tree / "src" / "twice.py").read_text() == "def a():\n    return 0\n\n\ndef b():\n    return 0\n"


def test_a_search_line_that_only_ends_a_longer_line_is_refused_not_spliced_into_it(tree: Path) -> None:
    (tree / "src" / "m.py").write_text("max = 1\nprint(max)\n")
    report = run_edit(tree, blocks=[EditBlock(path="src/m.py", search="x = 1\n", replace="y = 1\n")])
    assert (tree / "src" / "m.py").read_text() == "max = 1\nprint(max)\n"
    assert report.status == "refused"


def test_a_search_block_not_in_the_file_is_refused_with_the_closest_lines(tree: Path) -> None:
    report = run_edit(
        tree,
        patch='src/a.py\n<<<<<<< SEARCH\ndef greet(name):\n    return f"Hello, {name}!"\n=======\n'
        'def greet(name):\n    return "Hi"\n>>>>>>> REPLACE\n',
    )
    assert report.status == "refused"
    assert "SEARCH is not in the file; for example this line is nowhere in it: 'def greet(name):'" in (
        report.problems[0].reason
    )
    assert report.problems[0].closest is not None and '5:     return f"Hello, {name}!"' in report.problems[0].closest
    assert (tree / "src" / "a.py").read_text() == GREET


def test_a_search_block_with_other_indentation_matches_and_its_replacement_is_reindented(tree: Path) -> None:
    text = (
        "src/a.py\n<<<<<<< SEARCH\ndef shout(name: str) -> str:\n    return greet(name).upper()\n=======\n"
        "def shout(name: str) -> str:\n    if not name:\n        return ''\n    return greet(name).upper()\n"
        ">>>>>>> REPLACE\n"
    )
    (tree / "src" / "a.py").write_text("class Greeter:\n" + "".join("    " + line for line in GREET.splitlines(True)))
    report = run_edit(tree, patch=text)
    assert report.status == "applied", report.refusal()
    assert (
        (tree / "src" / "a.py")
        .read_text()
        .endswith(
            "    def shout(name: str) -> str:\n        if not name:\n            return ''\n"
            "        return greet(name).upper()\n"
        )
    )
    assert report.hunks[0].method == "indentation"
    assert report.hunks[0].notes == ["indented added lines by 4 more space(s)"]


def test_a_content_block_writes_the_whole_file(tree: Path) -> None:
    report = run_edit(
        tree, blocks=[EditBlock(path="src/b.py", content="VALUE = 2\n"), EditBlock(path="n/c.py", content="")]
    )
    assert report.status == "applied"
    assert (tree / "src" / "b.py").read_text() == "VALUE = 2\n" and (tree / "n" / "c.py").read_bytes() == b""
    assert [(f.path, f.action) for f in report.files] == [("n/c.py", "created"), ("src/b.py", "modified")]


def test_a_delete_block_removes_the_file(tree: Path) -> None:
    report = run_edit(tree, blocks=[EditBlock(path="src/b.py", delete=True)])
    assert report.status == "applied" and not (tree / "src" / "b.py").exists()


def test_a_move_block_renames_the_file(tree: Path) -> None:
    report = run_edit(tree, blocks=[EditBlock(path="src/b.py", move_to="src/sub/values.py")])
    assert report.status == "applied"
    assert not (tree / "src" / "b.py").exists() and (tree / "src" / "sub" / "values.py").read_text() == "VALUE = 1\n"


def test_structured_search_and_replace_blocks_apply_in_order(tree: Path) -> None:
    report = run_edit(
        tree,
        blocks=[
            EditBlock(
                path="src/a.py",
                search='    return f"Hello, {name}!"\n',
                replace='    return f"Hello, {name.strip()}!"\n',
            ),
            EditBlock(path="src/b.py", search="VALUE = 1\n", replace="VALUE = 2\n"),
        ],
    )
    assert report.status == "applied"
    assert (tree / "src" / "a.py").read_text() == GREETED and (tree / "src" / "b.py").read_text() == "VALUE = 2\n"


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"content": "x", "delete": True}, id="content-and-delete"),
        pytest.param({"search": "a", "replace": "b", "move_to": "c.py"}, id="search-and-move"),
        pytest.param({"content": "x", "move_to": "c.py"}, id="content-and-move"),
        pytest.param({}, id="no-shape"),
    ],
)
def test_an_edit_block_with_other_than_one_shape_is_a_validation_error(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="must have exactly one of: search\\+replace, content, delete, move_to"):
        EditBlock(path="src/a.py", **fields)  # type: ignore[arg-type]


def test_an_edit_block_with_search_but_no_replace_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="needs both search and replace"):
        EditBlock(path="src/a.py", search="x")


# --- plan conformance and file modes ----------------------------------------------------------------------------


def test_an_edit_outside_the_plans_files_is_refused_naming_the_file(tree: Path) -> None:
    before = snapshot(tree)
    report = run_edit(tree, patch=GREET_PATCH + modify_patch("src/b.py"), allowed=["src/a.py"])
    assert report.status == "refused"
    assert [p.file for p in report.problems] == ["src/b.py"]
    assert "the approved plan does not list src/b.py" in report.problems[0].reason
    assert snapshot(tree) == before


def test_a_warn_only_plan_applies_an_edit_outside_its_files_with_a_warning(tree: Path) -> None:
    report = run_edit(tree, patch=GREET_PATCH + modify_patch("src/b.py"), allowed=["src/a.py"], enforce_allowed=False)
    assert report.status == "applied" and report.problems == []
    assert report.warnings == [
        "the approved plan does not list src/b.py (allowed by the warn-only plan policy; logged)"
    ]
    assert (tree / "src" / "a.py").read_text() == GREETED and (tree / "src" / "b.py").read_text() == "VALUE = 2\n"


@pytest.mark.parametrize("pattern", ["src/", "src", "src/*.py", "./src/b.py"])
def test_a_plan_entry_may_name_a_directory_or_a_glob(tree: Path, pattern: str) -> None:
    report = run_edit(tree, patch=modify_patch("src/b.py"), allowed=[pattern])
    assert report.status == "applied" and report.warnings == []


def test_an_edit_keeps_the_files_mode(tree: Path) -> None:
    script = tree / "run.sh"
    script.write_text("#!/bin/sh\necho one\n")
    script.chmod(0o755)
    report = run_edit(tree, patch="--- a/run.sh\n+++ b/run.sh\n@@ -1,2 +1,2 @@\n #!/bin/sh\n-echo one\n+echo two\n")
    assert report.status == "applied"
    assert script.read_text() == "#!/bin/sh\necho two\n"
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    assert not [p.name for p in tree.iterdir() if ".shipway-" in p.name]  # no staging file left behind


def test_a_leading_dot_slash_in_a_plan_entry_is_only_a_prefix_not_characters_to_strip(tree: Path) -> None:
    # "./.src/b.py" names the file b.py in a directory ".src", not src/b.py.
    report = run_edit(tree, patch=modify_patch("src/b.py"), allowed=["./.src/b.py"])
    assert report.status == "refused" and "does not list src/b.py" in report.problems[0].reason
