"""Reviewer identities: `shipway reviewer add|list|remove` and the token file behind them."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from mcp_server.reviewers import ReviewerStore
from tests.test_cli import shipway


def test_add_prints_a_token_once_that_verifies_and_stores_only_its_hash(repo: Path) -> None:
    added = shipway("reviewer", "add", "carol", "--repo", str(repo))
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    path = repo / ".shipway" / "reviewers.json"
    assert token.startswith("swr_") and token not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store = ReviewerStore(repo / ".shipway")
    found = store.verify(token)
    assert found is not None and found.name == "carol"
    assert store.verify(token + "x") is None and store.verify("") is None
    listed = shipway("reviewer", "list", "--repo", str(repo))
    assert listed.returncode == 0 and listed.stdout.startswith("carol  added ")


def test_adding_again_rekeys_and_removing_ends_the_token(repo: Path) -> None:
    store = ReviewerStore(repo / ".shipway")
    old = store.add("carol")
    new = store.add("carol")
    assert store.verify(old) is None and store.verify(new) is not None and len(store.all()) == 1
    removed = shipway("reviewer", "remove", "carol", "--repo", str(repo))
    assert removed.returncode == 0 and store.verify(new) is None


def test_bad_names_and_unknown_reviewers_are_refused_and_change_nothing(repo: Path) -> None:
    store = ReviewerStore(repo / ".shipway")
    store.add("dave")
    before = (repo / ".shipway" / "reviewers.json").read_text()
    for name in ("bad name", "../x", ".hidden", "x/y", "x" * 65, ""):
        proc = shipway("reviewer", "add", name, "--repo", str(repo))
        assert proc.returncode == 1 and "reviewer name is 1-64" in proc.stderr, (name, proc.stderr)
    unknown = shipway("reviewer", "remove", "nobody", "--repo", str(repo))
    assert unknown.returncode == 1 and "no reviewer named 'nobody'" in unknown.stderr
    assert (repo / ".shipway" / "reviewers.json").read_text() == before


def test_a_damaged_reviewer_file_is_an_actionable_error(repo: Path) -> None:
    path = repo / ".shipway" / "reviewers.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps([{"name": "carol"}]))
    proc = shipway("reviewer", "list", "--repo", str(repo))
    assert proc.returncode == 1 and "is damaged" in proc.stderr and "add the reviewers again" in proc.stderr
