"""Fast in-process localization eval for tuning the ranking (the printed benchmark is localization.py).

Indexes each dev repository once per base commit straight from its bare mirror (incremental
between commits of the same repository) and scores the ranked files against the real fix's
files. Usage: MIRRORS=/work/.mirror python -m bench.localization_tune [--kind hybrid]
[--weights '{"path": 2}'] [--show-misses]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from knowledge_base.embedders import MiniLMEmbedder
from knowledge_base.ranking import Weights
from knowledge_base.repo_index import RepoIndex
from knowledge_base.semantic import ChromaVectorIndex
from tools.git_source import GitTreeSource

DEV_SET = Path(__file__).resolve().parents[2] / "shared" / "bench" / "localization_dev.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DEV_SET)
    parser.add_argument("--kind", default="hybrid")
    parser.add_argument("--weights", default="{}")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "shipway-loc-tune")
    parser.add_argument("--show-misses", action="store_true")
    parser.add_argument("--semantic", action="store_true", help="embed chunks with MiniLM (slow on CPU)")
    parser.add_argument("--repos", help="comma-separated owner/name filter")
    args = parser.parse_args()
    weights = Weights(**json.loads(args.weights))
    mirrors = Path(os.environ["MIRRORS"])
    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    if args.repos:
        rows = [r for r in rows if r["repo"] in args.repos.split(",")]
    embedder = MiniLMEmbedder() if args.semantic else None
    r1, r5, rr, times = [], [], [], []
    for row in sorted(rows, key=lambda r: (r["repo"], r["instance_id"])):
        gitdir = mirrors / row["repo"].replace("/", "+") / "repo"
        directory = args.workdir / row["repo"].replace("/", "+")
        vectors = ChromaVectorIndex(directory, embedder) if embedder else None
        index = RepoIndex(directory, GitTreeSource(gitdir, row["base_commit"]), vectors, weights)
        index.update(semantic=bool(embedder))
        started = time.perf_counter()
        files = index.search(row["problem_statement"], k=50, kind=args.kind).files
        times.append(time.perf_counter() - started)
        gold = row["gold_files"]
        ranks = [files.index(g) + 1 if g in files else None for g in gold]
        found = [r for r in ranks if r]
        r1.append(sum(1 for r in found if r <= 1) / len(gold))
        r5.append(sum(1 for r in found if r <= 5) / len(gold))
        rr.append(1 / min(found) if found else 0.0)
        if args.show_misses and (not found or min(found) > 1):
            print(f"{row['instance_id']:35s} gold={gold} ranks={ranks} top3={files[:3]}")
    print(
        f"R@1 {statistics.mean(r1):.3f}  R@5 {statistics.mean(r5):.3f}  MRR {statistics.mean(rr):.3f}  "
        f"query p50 {statistics.median(times) * 1000:.0f} ms  (n={len(rows)}, kind={args.kind})"
    )


if __name__ == "__main__":
    main()
