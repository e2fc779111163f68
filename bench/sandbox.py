"""Sandbox overhead and worktree creation time.

    .venv/bin/python -m bench.sandbox [--runs 200] [--files 20000] [--repo PATH]

1. `true` run N times: bare `subprocess.run`, a minimal `bwrap --ro-bind / / true`, and
   through BubblewrapSandbox (mounts, prlimit, setpriv, watchdogs). p50/p95 and overhead.
2. Creating a task worktree on a large repository: WorktreeManager.ensure (driver overrides,
   chown to the task uid) against plain `git worktree add` on the same repo, same run.
   --repo uses an existing repository; otherwise one with --files files is generated.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench._common import ms, percentile
from sandbox.base import Limits
from sandbox.bubblewrap import BubblewrapSandbox
from sandbox.worktree import WorktreeManager

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@x"}  # fmt: skip


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    for _ in range(5):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def generated_repo(files: int) -> Path:
    repo = Path(tempfile.mkdtemp(prefix="shipway-bench-big-"))
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    for n in range(files):
        folder = repo / f"pkg{n % 200:03d}"
        folder.mkdir(exist_ok=True)
        (folder / f"mod{n}.py").write_text(f"def f{n}(x):\n    return x + {n}\n" * 20, encoding="utf-8")
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "big"], check=True, env=GIT_ENV)
    return repo


def bench_exec(runs: int) -> None:
    sandbox = BubblewrapSandbox()
    repo = generated_repo(10)
    manager = WorktreeManager(repo, repo / ".shipway")
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    workspace = manager.workspace(manager.ensure("bench00000000", head))
    limits = Limits(timeout_s=30)
    bare = timed(lambda: subprocess.run(["true"], check=True), runs)
    minimal = timed(lambda: subprocess.run([sandbox.bwrap, "--ro-bind", "/", "/", "true"], check=True), runs)
    ours = timed(lambda: sandbox.run(["true"], workspace, limits), runs)
    b50 = percentile(bare, 50)
    print(f"exec `true`, {runs} runs each:")
    for label, samples in (
        ("bare exec", bare),
        ("bwrap --ro-bind / / (minimal)", minimal),
        ("BubblewrapSandbox", ours),
    ):
        p50 = percentile(samples, 50)
        print(f"  {label:<32} p50 {ms(p50)}  p95 {ms(percentile(samples, 95))}  "
              f"overhead vs bare {ms(p50 - b50)}  ratio {p50 / b50:6.1f}x")  # fmt: skip
    print(f"  target: p50 overhead <= 10 ms -> {'met' if percentile(ours, 50) - b50 <= 0.010 else 'NOT met'}")
    shutil.rmtree(repo, ignore_errors=True)


def bench_worktree(repo: Path | None, files: int) -> None:
    source = repo or generated_repo(files)
    count = subprocess.run(["git", "-C", str(source), "ls-files"], capture_output=True, text=True).stdout.count("\n")
    head = subprocess.run(
        ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    plain_times, our_times = [], []
    # Alternate, so that neither side alone pays for a cold page cache.
    for round_ in range(3):
        plain_dir = Path(tempfile.mkdtemp(prefix="shipway-bench-wt-")) / "wt"
        start = time.perf_counter()
        subprocess.run(
            ["git", "-C", str(source), "worktree", "add", "-q", "--detach", str(plain_dir), head], check=True
        )
        plain_times.append(time.perf_counter() - start)
        subprocess.run(["git", "-C", str(source), "worktree", "remove", "--force", str(plain_dir)], check=True)
        manager = WorktreeManager(source, Path(tempfile.mkdtemp(prefix="shipway-bench-state-")))
        task_id = f"benchbench{round_:02d}"
        start = time.perf_counter()
        manager.ensure(task_id, head)
        our_times.append(time.perf_counter() - start)
        manager.remove(task_id)
        subprocess.run(["git", "-C", str(source), "branch", "-D", f"shipway/{task_id}"], capture_output=True)
    plain, ours = sorted(plain_times)[1], sorted(our_times)[1]
    print(f"worktree creation, {count:,} files (median of 3, alternating):")
    print(f"  git worktree add        {plain * 1000:9.1f} ms")
    print(f"  WorktreeManager.ensure  {ours * 1000:9.1f} ms   ratio {ours / plain:5.2f}x (driver overrides + chown)")
    if repo is None:
        shutil.rmtree(source, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--repo", type=Path, default=None)
    options = parser.parse_args()
    bench_exec(options.runs)
    bench_worktree(options.repo, options.files)
