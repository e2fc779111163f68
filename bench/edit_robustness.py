"""Edit robustness: does `shipway diff apply` produce exactly the intended file when the patch
is broken the ways models break patches? Printed beside `git apply` and GNU `patch`.

Default: runs ../shared/bench/patch_robustness.py (the shared harness) with
`--cmd 'shipway diff apply --repo {workdir} --patch {patch_file}'` on the dev set; the
harness runs git apply and patch on the same trials in the same run.

--history N   instead of the dev set, N real commits from the mirrors' history (patches the
              engine was never tuned on), written as a harness input file.
--fast        the same perturbations (imported from the harness) applied in-process through
              `tools.edits.run_edit`, for quick iteration; prints per-perturbation ok/wrong
              and, with --show, the trials that were not ok.

Needs the dev repositories fetched as bare mirrors: MIRRORS=/work/.mirror python -m bench.edit_robustness
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from bench._common import REPO_ROOT, SHIPWAY

SHARED = REPO_ROOT.parent / "shared" / "bench"
DEV_SET = SHARED / "localization_dev.jsonl"
PROJECT_CMD = f"{SHIPWAY} diff apply --repo {{workdir}} --patch {{patch_file}}"


def harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("patch_robustness", SHARED / "patch_robustness.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def git(gitdir: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(gitdir), *args], capture_output=True, text=True, check=True).stdout


def history_set(mirrors: Path, count: int, seed: int, dest: Path) -> Path:
    """Harness input from real single-parent commits that change 1-3 existing Python files."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    repos = sorted(p for p in mirrors.iterdir() if (p / "repo").is_dir())
    per_repo = max(1, count // max(1, len(repos)))
    for mirror in repos:
        gitdir = mirror / "repo"
        shas = git(gitdir, "rev-list", "--no-merges", "--max-count=3000", "HEAD").split()
        rng.shuffle(shas)
        taken = 0
        for sha in shas:
            if taken >= per_repo:
                break
            row = _commit_row(gitdir, mirror.name.replace("+", "/"), sha)
            if row is not None:
                rows.append(row)
                taken += 1
    dest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return dest


def _commit_row(gitdir: Path, repo: str, sha: str) -> dict[str, Any] | None:
    status = git(gitdir, "diff", "--name-status", "--no-renames", f"{sha}^", sha).split("\n")
    changed = [line.split("\t") for line in status if line]
    if not 1 <= len(changed) <= 3 or any(s != "M" or not p.endswith(".py") for s, p in changed):
        return None
    raw = subprocess.run(["git", "--git-dir", str(gitdir), "diff", "--no-color", "--no-ext-diff", f"{sha}^", sha],
                         capture_output=True, check=True).stdout  # fmt: skip
    try:
        patch = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not 200 < len(patch) < 20_000 or "\\ No newline" in patch or "\r" in patch:
        return None  # CRLF files would need the harness to keep carriage returns; skip them
    return {"instance_id": f"{repo}@{sha[:10]}", "repo": repo, "base_commit": f"{sha}^", "patch": patch,
            "gitdir": str(gitdir)}  # fmt: skip


def run_shared(data: Path, out: Path, limit: int) -> None:
    cmd = [sys.executable, str(SHARED / "patch_robustness.py"), "--in", str(data), "--out", str(out),
           "--cmd", PROJECT_CMD]  # fmt: skip
    if limit:
        cmd += ["--n", str(limit)]
    subprocess.run(cmd, check=True)


def run_fast(data: Path, limit: int, show: bool) -> None:
    from tools.edits.engine import run_edit
    from tools.errors import ToolInputError

    h = harness()
    rows = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    rows = rows[:limit] if limit else rows
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    tmp = Path(tempfile.mkdtemp(prefix="edit-rob-"))
    try:
        for row in rows:
            pre = _pre_image(h, row, tmp / "pre")
            expected = _expected(row, pre, tmp / "exp")
            base = h.parse(row["patch"])
            for name, perturb in h.PERTURB.items():
                text = perturb(h.copy_files(base), random.Random(f"0:{row['instance_id']}:{name}"))
                if text is None:
                    continue
                work = tmp / "wd"
                shutil.rmtree(work, ignore_errors=True)
                shutil.copytree(pre, work)
                try:
                    report = run_edit(work, patch=text)
                    ok = report.status == "applied"
                    why = "; ".join(p.reason for p in report.problems)
                except ToolInputError as exc:
                    ok, why = False, str(exc)
                outcome = "fail" if not ok else ("ok" if h.snapshot(str(work)) == expected else "wrong")
                counts[name][outcome] += 1
                if show and outcome != "ok":
                    print(f"  {outcome:5} {name:20} {row['instance_id']}: {why[:300]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _print_counts(counts, len(rows))


def _pre_image(h: ModuleType, row: dict[str, Any], pre: Path) -> Path:
    shutil.rmtree(pre, ignore_errors=True)
    gitdir = Path(h._gitdir(row))
    for path in h.files_in_patch(row["patch"]):
        target = pre / path
        target.parent.mkdir(parents=True, exist_ok=True)
        blob = subprocess.run(["git", "--git-dir", str(gitdir), "show", f"{row['base_commit']}:{path}"],
                              capture_output=True, check=True).stdout  # fmt: skip
        target.write_bytes(blob)
    return pre


def _expected(row: dict[str, Any], pre: Path, exp: Path) -> dict[str, bytes]:
    shutil.rmtree(exp, ignore_errors=True)
    shutil.copytree(pre, exp)
    subprocess.run(["git", "apply"], cwd=exp, input=row["patch"].encode(), check=True, capture_output=True)
    return {str(p.relative_to(exp)): p.read_bytes() for p in exp.rglob("*") if p.is_file()}


def _print_counts(counts: dict[str, collections.Counter[str]], patches: int) -> None:
    print(f"## shipway diff apply, in process ({patches} base patches)\n")
    print("| perturbation | n | ok % | wrong % |\n|---|---|---|---|")
    total: collections.Counter[str] = collections.Counter()
    for name, c in counts.items():
        n = sum(c.values())
        print(f"| {name} | {n} | {100 * c['ok'] / n:.1f} | {100 * c['wrong'] / n:.1f} |")
        if name != "identity":
            total.update(c)
    n = sum(total.values())
    print(f"| **all perturbed** | {n} | {100 * total['ok'] / n:.1f} | {100 * total['wrong'] / n:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", type=int, default=0, help="use N commits from the mirrors' history")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--n", type=int, default=0, help="limit base patches (0 = all)")
    parser.add_argument("--fast", action="store_true", help="in-process, for tuning")
    parser.add_argument("--show", action="store_true", help="with --fast: print every trial that was not ok")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "shipway-edit-robustness")
    args = parser.parse_args()
    mirrors = Path(os.environ.get("MIRRORS", ""))
    if not mirrors.is_dir():
        sys.exit("set MIRRORS to the folder holding the <owner>+<name> mirrors (see ../shared/bench/README.md)")
    args.out.mkdir(parents=True, exist_ok=True)
    data = history_set(mirrors, args.history, args.seed, args.out / "history.jsonl") if args.history else DEV_SET
    if args.fast:
        run_fast(data, args.n, args.show)
    else:
        run_shared(data, args.out / ("history" if args.history else "dev"), args.n)


if __name__ == "__main__":
    main()
