"""Localization benchmark: Shipway's hybrid search against BM25 on real GitHub issues, plus
index and query timings. Printed, never asserted.

1. Runs ../shared/bench/eval_localization.py twice in the same run: `--ranker bm25` (its
   baseline) and `--ranker cmd` with `shipway search --files`, on the dev set.
2. Builds a ~500k-line Python repository from the five dev mirrors (each under its own
   folder), times a full `shipway index --no-semantic`, an incremental index after a one-file
   commit, and query p50/p95 over the dev issues' texts.

Needs the dev repositories fetched as bare mirrors: MIRRORS=/work/.mirror python -m bench.localization
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import REPO_ROOT, SHIPWAY, ms, percentile

SHARED = REPO_ROOT.parent / "shared" / "bench"
_TABLE_ROW = re.compile(r"^\| ALL \|.*$", re.MULTILINE)


def run_harness(ranker: list[str], out: Path, data: Path) -> str:
    cmd = [sys.executable, str(SHARED / "eval_localization.py"), "--in", str(data), "--mode", "py-notests",
           "--out", str(out), *ranker]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    found = _TABLE_ROW.search(proc.stdout)
    return found.group() if found else proc.stdout[-2000:]


def combined_repo(mirrors: Path, dest: Path) -> tuple[Path, int]:
    """One git repository holding the HEAD trees of every mirror, each in its own folder."""
    from tools.git_source import GitTreeSource

    lines = 0
    for mirror in sorted(mirrors.iterdir()):
        source = GitTreeSource(mirror / "repo")
        head = source.head()
        if head is None:
            continue
        entries = {e.blob: e for e in source.entries(head) if e.size < 1_000_000}
        for blob, data in source.read_blobs(list(entries)):
            target = dest / mirror.name / entries[blob].path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            if entries[blob].path.endswith(".py"):
                lines += data.count(b"\n")
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "combined")
    return dest, lines


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@x"}  # fmt: skip
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout


def shipway(*args: str) -> float:
    env = {**os.environ, "SHIPWAY_EMBEDDER": "none"}
    started = time.perf_counter()
    subprocess.run([SHIPWAY, *args], check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def timings(mirrors: Path, data: Path) -> None:
    from mcp_server.app import open_search
    from mcp_server.config import load_settings

    with tempfile.TemporaryDirectory(prefix="shipway-loc-big-") as tmp:
        repo, lines = combined_repo(mirrors, Path(tmp) / "big")
        print(f"\nCombined repository: {lines:,} lines of Python in {len(git(repo, 'ls-files').splitlines()):,} files")
        full = shipway("index", "--no-semantic", "--repo", str(repo))
        print(f"full index (lexical + symbols, no embeddings), 2 cores: {full:.1f} s")
        target = next(p for p in sorted(repo.rglob("*.py")) if p.stat().st_size > 2_000)
        target.write_text(target.read_text(encoding="utf-8", errors="replace") + "\n\ndef bench_marker():\n    pass\n")
        git(repo, "commit", "-qam", "one-file change")
        incremental = shipway("index", "--no-semantic", "--repo", str(repo))
        print(f"incremental index after a one-file commit (whole CLI process): {incremental:.2f} s (target < 2 s)")
        os.environ["SHIPWAY_EMBEDDER"] = "none"
        search = open_search(load_settings(repo=repo))
        queries = [json.loads(line)["problem_statement"] for line in data.read_text().splitlines() if line.strip()]
        samples = []
        for query in queries * 3:
            started = time.perf_counter()
            search.search_repo(query, k=10)
            samples.append(time.perf_counter() - started)
        print(f"query (hybrid, k=10, issue texts, {len(samples)} runs): p50 {ms(percentile(samples, 50))}, "
              f"p95 {ms(percentile(samples, 95))} (target p50 < 100 ms)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=SHARED / "localization_dev.jsonl")
    parser.add_argument("--skip-timings", action="store_true")
    args = parser.parse_args()
    mirrors = Path(os.environ.get("MIRRORS", "/work/.mirror"))
    os.environ["MIRRORS"] = str(mirrors)
    with tempfile.TemporaryDirectory(prefix="shipway-loc-") as tmp:
        out = Path(tmp)
        command = (
            f"SHIPWAY_EMBEDDER=none {SHIPWAY} search --repo {{repo_dir}} --query-file {{query_file}} --files -k 50"
        )
        print(f"Localization on {args.data.name} (mode py-notests for BM25; Shipway ranks every file)")
        print("| ranker | n | R@1 | R@3 | R@5 | R@10 | R@20 | MRR | s/inst |")
        print(run_harness(["--ranker", "bm25"], out / "bm25", args.data).replace("| ALL |", "| BM25 (baseline) |"))
        shipway_row = run_harness(["--ranker", "cmd", "--cmd", command], out / "shipway", args.data)
        print(shipway_row.replace("| ALL |", "| Shipway hybrid |"))
    if not args.skip_timings:
        timings(mirrors, args.data)


if __name__ == "__main__":
    main()
