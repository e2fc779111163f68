"""The code index on a real git repository: what it indexes, how it ranks, how it stays current."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from knowledge_base.embedders import ToyEmbedder
from knowledge_base.errors import EmptyRepository, InvalidQuery
from knowledge_base.ranking import Weights
from knowledge_base.repo_index import RepoIndex
from knowledge_base.semantic import ChromaVectorIndex
from tests.helpers.gitrepo import git, init_repo
from tests.knowledge_base.sample_repo import make_sample_repo
from tools.git_source import GitTreeSource


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return make_sample_repo(tmp_path / "shop")


def open_index(repo: Path, tmp_path: Path, vectors: bool = False) -> RepoIndex:
    directory = tmp_path / "index"
    return RepoIndex(directory, GitTreeSource(repo), ChromaVectorIndex(directory, ToyEmbedder()) if vectors else None)


def files_for(index: RepoIndex, query: str, kind: str = "hybrid") -> list[str]:
    return index.search(query, k=10, kind=kind).files


def test_binary_vendored_and_minified_files_are_skipped_and_latin1_is_indexed(shop: Path, tmp_path: Path) -> None:
    index = open_index(shop, tmp_path)
    stats = index.update()
    with index.db.read() as conn:
        skipped = dict(conn.execute("SELECT path, skipped FROM files WHERE skipped IS NOT NULL").fetchall())
    assert skipped == {
        "vendor/lib/big.py": "vendored",
        "assets/logo.png": "unsupported type",
        "static/app.min.js": "generated",
        "web/bundle.js": "minified",
    }
    assert stats.files == 9 and stats.skipped == 4
    assert files_for(index, "brew coffee")[0] == "legacy/latin1.py"


def test_a_symbol_query_finds_the_defining_file_first_and_says_why(shop: Path, tmp_path: Path) -> None:
    result = open_index(shop, tmp_path).search("parse_config fails on a missing file", k=3)
    top = result.hits[0]
    assert top.path == "src/shop/config.py"
    assert "defines parse_config" in top.signals
    assert top.start_line <= 9 <= top.end_line  # the hit's range holds the definition
    assert "def parse_config" in top.snippet


def test_each_kind_ranks_on_its_own_signal(shop: Path, tmp_path: Path) -> None:
    index = open_index(shop, tmp_path)
    assert files_for(index, "ShoppingCart", kind="symbol")[0] == "src/shop/cart.py"
    assert files_for(index, "coupon code percentage", kind="lexical")[0] == "src/shop/discounts.py"
    assert files_for(index, "Reserve stock in the inventory")[0] == "server/inventory.go"
    assert files_for(index, "submitOrder in the checkout form")[0] == "web/checkout.js"


def test_test_files_are_demoted_unless_the_query_is_about_tests(shop: Path, tmp_path: Path) -> None:
    directory, source = tmp_path / "index", GitTreeSource(shop)
    demoting, neutral = RepoIndex(directory, source), RepoIndex(directory, source, weights=Weights(test_factor=1.0))

    def test_file_score(index: RepoIndex, query: str) -> float:
        return next(h.score for h in index.search(query, k=20).hits if h.path == "tests/test_cart.py")

    plain = "add_item rejects zero quantity"
    assert test_file_score(demoting, plain) == pytest.approx(
        test_file_score(neutral, plain) * Weights().test_factor, rel=1e-4
    )
    assert demoting.search(plain).files[0] == "src/shop/cart.py"
    about_tests = "the test for add_item rejects zero quantity fails"
    assert test_file_score(demoting, about_tests) == pytest.approx(test_file_score(neutral, about_tests), rel=1e-4)


def test_a_stack_trace_points_at_the_frame_in_the_repository(shop: Path, tmp_path: Path) -> None:
    trace = (
        "Traceback (most recent call last):\n"
        '  File "/home/me/venv/lib/python3.11/site-packages/shop/discounts.py", line 6, in apply_coupon\n'
        "KeyError: 'x'\n"
    )
    hit = open_index(shop, tmp_path).search(trace, k=1).hits[0]
    assert hit.path == "src/shop/discounts.py"
    assert any("stack trace at line 6" in s for s in hit.signals)


def test_path_glob_limits_results_and_a_glob_matching_nothing_is_explained(shop: Path, tmp_path: Path) -> None:
    index = open_index(shop, tmp_path)
    assert set(index.search("price total", k=10, path_glob="web/*").files) <= {"web/checkout.js"}
    with pytest.raises(InvalidQuery, match="matches none of the 9 indexed files"):
        index.search("price", path_glob="nowhere/**")


def test_empty_huge_and_malformed_queries_get_clear_answers(shop: Path, tmp_path: Path) -> None:
    index = open_index(shop, tmp_path)
    with pytest.raises(InvalidQuery, match="empty"):
        index.search("   \n")
    with pytest.raises(InvalidQuery, match="unknown search kind"):
        index.search("cart", kind="fuzzy")
    with pytest.raises(InvalidQuery, match="k must be between"):
        index.search("cart", k=0)
    huge = index.search("ShoppingCart " * 5_000 + '" OR NEAR( * ^')
    assert huge.notes and "truncated" in huge.notes[0]
    assert huge.files[0] == "src/shop/cart.py"


def test_a_repository_without_commits_is_refused_with_a_hint(tmp_path: Path) -> None:
    empty = init_repo(tmp_path / "empty", commit=False)
    with pytest.raises(EmptyRepository, match="no commits yet"):
        open_index(empty, tmp_path).search("anything")


def test_after_a_commit_only_the_changed_file_is_read_again(shop: Path, tmp_path: Path) -> None:
    index = open_index(shop, tmp_path)
    index.update()
    (shop / "src/shop/discounts.py").write_text("def apply_loyalty_bonus(points):\n    return points * 2\n")
    git(shop, "commit", "-qam", "loyalty")
    started = time.monotonic()
    stats = index.update()
    assert (stats.new_blobs, stats.removed_blobs) == (1, 1)
    assert time.monotonic() - started < 5  # generous: the benchmark measures it properly
    assert files_for(index, "apply_loyalty_bonus")[0] == "src/shop/discounts.py"
    assert "apply_coupon" not in str(index.search("apply_coupon", kind="symbol").hits)


def test_a_query_brings_a_stale_index_up_to_the_new_head(shop: Path, tmp_path: Path) -> None:
    index = open_index(shop, tmp_path)
    index.update()
    (shop / "src/shop/shipping.py").write_text("def shipping_cost(weight_kg):\n    return 5 + weight_kg\n")
    git(shop, "add", "-A")
    git(shop, "commit", "-qm", "shipping")
    result = index.search("shipping_cost")
    assert result.commit == git(shop, "rev-parse", "HEAD")
    assert result.files[0] == "src/shop/shipping.py"


def test_semantic_vectors_follow_the_index_and_are_only_built_on_request(shop: Path, tmp_path: Path) -> None:
    index = open_index(shop, tmp_path, vectors=True)
    first = index.search("shopping cart items")
    assert any("not built yet" in note for note in first.notes)
    index.update(semantic=True)
    assert index.vectors is not None
    with index.db.read() as conn:
        chunk_count = conn.execute(
            "SELECT COUNT(DISTINCT c.id) FROM chunks c JOIN files f ON f.blob = c.blob WHERE f.skipped IS NULL"
        ).fetchone()[0]
    collection = index.vectors._open()  # type: ignore[attr-defined]
    assert collection.count() == chunk_count
    semantic = index.search("ShoppingCart add_item quantity", kind="semantic")
    assert semantic.files[0] == "src/shop/cart.py" and not semantic.notes
    git(shop, "rm", "-q", "src/shop/cart.py")
    git(shop, "commit", "-qm", "drop the cart")
    assert "src/shop/cart.py" not in index.search("ShoppingCart add_item", kind="semantic").files
    assert collection.count() < chunk_count  # the removed file's vectors are gone


def test_two_paths_with_the_same_content_are_indexed_once_and_both_found(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "dup", commit=False)
    for name in ("a/util.py", "b/util.py"):
        (repo / name).parent.mkdir(parents=True)
        (repo / name).write_text("def frobnicate_widget():\n    return 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "dup")
    index = open_index(repo, tmp_path)
    assert index.update().new_blobs == 1
    assert sorted(files_for(index, "frobnicate_widget")[:2]) == ["a/util.py", "b/util.py"]
