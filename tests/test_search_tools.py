"""Search, reading and knowledge over MCP (in-process client) and the CLI, on a real repository."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from mcp import Client

from mcp_server.app import ServerDeps, open_deps
from mcp_server.config import load_settings
from mcp_server.server import create_server
from tests.helpers.servers import SHIPWAY
from tests.knowledge_base.sample_repo import make_sample_repo

pytestmark = pytest.mark.anyio


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The sample shop replaces conftest's one-file repository, so `deps` serves the shop."""
    return make_sample_repo(tmp_path / "shop")


@pytest.fixture
def shop(repo: Path) -> Path:
    return repo


@pytest.fixture
def shop_deps(deps: ServerDeps) -> ServerDeps:
    return deps


async def call(deps: ServerDeps, tool: str, **arguments: object) -> tuple[bool, dict[str, object], str]:
    async with Client(create_server(deps)) as client:
        result = await client.call_tool(tool, arguments)
    text = "".join(getattr(block, "text", "") for block in result.content)
    return bool(result.is_error), result.structured_content or {}, text


async def test_search_repo_returns_ranked_hits_with_line_ranges_and_reasons(shop_deps: ServerDeps) -> None:
    failed, report, _ = await call(shop_deps, "search_repo", query="where is parse_config defined?", k=3)
    assert not failed
    hits = report["hits"]
    assert isinstance(hits, list) and hits[0]["path"] == "src/shop/config.py"
    assert "defines parse_config" in hits[0]["signals"] and hits[0]["start_line"] >= 1
    assert any("semantic search unavailable" in note for note in report["notes"])  # type: ignore[union-attr]


async def test_search_repo_explains_bad_input_instead_of_failing(shop_deps: ServerDeps) -> None:
    failed, _, text = await call(shop_deps, "search_repo", query="cart", path_glob="nowhere/*")
    assert failed and "matches none of the" in text
    failed, _, text = await call(shop_deps, "search_repo", query="cart", kind="semantic")
    assert failed and "semantic search is unavailable" in text and "kind=hybrid" in text


async def test_read_file_is_bounded_and_says_how_to_read_the_rest(shop_deps: ServerDeps, shop: Path) -> None:
    failed, part, _ = await call(shop_deps, "read_file", path="src/shop/cart.py", start_line=2, end_line=4)
    assert not failed
    lines = (shop / "src/shop/cart.py").read_text().splitlines(keepends=True)
    assert part["text"] == "".join(lines[1:4]) and part["truncated"] is False
    assert part["next"] == "read_file(path='src/shop/cart.py', start_line=5)"
    _, whole, _ = await call(shop_deps, "read_file", path="./src/shop/cart.py")
    assert whole["text"] == "".join(lines) and whole["truncated"] is False and whole["next"] is None


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../../etc/passwd", "is not a file in the repository"),
        ("/etc/passwd", "is not a file in the repository"),
        (".git/config", "is not a file in the repository"),
        ("assets/logo.png", "binary file"),
    ],
)
async def test_read_file_refuses_paths_outside_the_tree_and_binaries(
    shop_deps: ServerDeps, path: str, message: str
) -> None:
    failed, _, text = await call(shop_deps, "read_file", path=path)
    assert failed and message in text
    assert "root:" not in text


async def test_read_file_past_the_end_is_explained(shop_deps: ServerDeps) -> None:
    failed, _, text = await call(shop_deps, "read_file", path="src/shop/cart.py", start_line=999)
    assert failed and "start_line 999 is past the end" in text


async def test_repo_map_outlines_definitions_within_the_budget(shop_deps: ServerDeps) -> None:
    _, full, _ = await call(shop_deps, "repo_map", budget_tokens=5_000)
    outline = str(full["outline"])
    assert "src/shop/config.py\n" in outline and "  function parse_config  L9" in outline
    assert "    method add_item  L9" in outline  # methods sit under their class
    assert outline.index("src/shop/config.py") < outline.index("tests/test_cart.py")  # used code before tests
    _, small, _ = await call(shop_deps, "repo_map", budget_tokens=100)
    assert len(str(small["outline"])) <= 400 and small["truncated"] is True


async def test_knowledge_finds_repo_docs_and_added_notes_with_their_sources(shop_deps: ServerDeps) -> None:
    _, found, _ = await call(shop_deps, "search_knowledge", query="why TOML for settings")
    entries = found["entries"]
    assert isinstance(entries, list) and entries[0]["source"] == "docs/adr/0001-use-toml.md#L1-L3"
    assert entries[0]["origin"] == "repo"
    failed, added, _ = await call(
        shop_deps, "add_knowledge", title="PR 7: coupons stack", text="Coupons now stack up to 30 percent.",
        source="https://example.invalid/pr/7",
    )  # fmt: skip
    assert not failed and added["origin"] == "added"
    _, found, _ = await call(shop_deps, "search_knowledge", query="do coupons stack?")
    entries = found["entries"]
    assert isinstance(entries, list) and entries[0]["source"] == "https://example.invalid/pr/7"
    failed, _, text = await call(shop_deps, "add_knowledge", title=" ", text="x", source="y")
    assert failed and "title is empty" in text


def test_cli_search_files_prints_ranked_paths_for_the_localization_benchmark(shop: Path, tmp_path: Path) -> None:
    query = tmp_path / "issue.txt"
    query.write_text("Applying coupon code SAVE20 gives the wrong total\n", encoding="utf-8")
    proc = subprocess.run(
        [SHIPWAY, "search", "--repo", str(shop), "--query-file", str(query), "--files", "-k", "3"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    paths = proc.stdout.splitlines()
    assert paths[0] == "src/shop/discounts.py" and len(paths) == 3 and len(set(paths)) == 3


def test_cli_index_reports_json_and_search_json_matches_the_tool_model(shop: Path) -> None:
    index = subprocess.run([SHIPWAY, "index", "--repo", str(shop), "--json"], capture_output=True, text=True,
                           timeout=120, check=False)  # fmt: skip
    assert index.returncode == 0, index.stderr
    report = json.loads(index.stdout)
    assert report["files"] == 9 and report["semantic"].startswith("off: semantic search is switched off")
    search = subprocess.run([SHIPWAY, "search", "ShoppingCart", "--repo", str(shop), "--json", "--kind", "symbol"],
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert json.loads(search.stdout)["hits"][0]["path"] == "src/shop/cart.py"
    bad = subprocess.run([SHIPWAY, "search", "--repo", str(shop)], capture_output=True, text=True, timeout=60,
                         check=False)  # fmt: skip
    assert bad.returncode == 2 and "give a QUERY or --query-file" in bad.stderr


async def test_read_file_caps_a_long_range_and_points_at_the_rest(shop: Path) -> None:
    from tests.helpers.gitrepo import git

    (shop / "long.py").write_text("".join(f"x_{n} = {n}\n" for n in range(1, 1001)), encoding="utf-8")
    git(shop, "add", "long.py")
    git(shop, "commit", "-qm", "long file")
    deps = open_deps(load_settings(repo=shop))
    try:
        failed, part, _ = await call(deps, "read_file", path="long.py", start_line=1, end_line=1000)
    finally:
        deps.tasks.store.close()
    assert not failed and part["end_line"] == 400 and part["truncated"] is True and part["total_lines"] == 1000
    assert part["next"] == "read_file(path='long.py', start_line=401)"
