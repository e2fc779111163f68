"""Agent queue throughput and recovery: the shared AWS queue against the embedded SQLite one.

    .venv/bin/python -m bench.queue [--tasks 200] [--workers 1,2,4] [--lease 2]

Starts a moto server on 127.0.0.1 (real HTTP, the same server the tests use) and measures, in
the same run:
1. Throughput: N worker processes drain a queue of no-op tasks (claim, then release: the
   queue's own cost, no agent work). Tasks per second for SqliteAgentQueue (one file, the
   default) and SqsAgentQueue (SQS + DynamoDB leases), and their ratio.
2. Recovery: a worker claims a task and is SIGKILLed; another worker polling the queue claims
   it. Seconds from the kill to the takeover, against the lease it had to outlive.
3. Branch handover: a task branch of a few commits published to the artifacts bucket (bundle
   and patch per commit), then brought into a fresh clone on "another machine". Against, in the
   same run, a local `git bundle create` per commit and a `git fetch` of the branch straight
   from the first clone (what a shared disk would cost).

moto is a local emulator: the AWS numbers say what the queue protocol costs in round trips,
not what AWS's latency will be (each call is one HTTP request here, ~1-3 ms; in a region,
expect 5-20 ms per call).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import tempfile
import time
from pathlib import Path

from mcp_server.agent_queue import AgentQueue, SqliteAgentQueue
from mcp_server.app import open_task_service
from mcp_server.artifacts import S3Artifacts
from mcp_server.config import load_settings
from mcp_server.shared_branches import SharedBranches
from mcp_server.sqs_queue import SqsAgentQueue
from mcp_server.tasks.model import Actor
from sandbox.worktree import WorktreeManager
from tests.helpers.gitrepo import git
from tests.helpers.moto_server import FAKE_CREDENTIALS, moto_server
from tests.helpers.samples import commit_file, sample_repo


def make_queue(kind: str, where: str) -> AgentQueue:
    return SqliteAgentQueue(Path(where)) if kind == "sqlite" else SqsAgentQueue("bench", endpoint_url=where)


def drain(kind: str, where: str, name: str, done: multiprocessing.Value) -> None:  # type: ignore[valid-type]
    queue = make_queue(kind, where)
    idle = 0
    while idle < 2:
        task = queue.claim(name, 30.0)
        if task is None:
            idle += 1
            continue
        idle = 0
        queue.release(task, name)
        with done.get_lock():  # type: ignore[attr-defined]
            done.value += 1  # type: ignore[attr-defined]


def throughput(kind: str, where: str, tasks: int, workers: int) -> float:
    queue = make_queue(kind, where)
    for n in range(tasks):
        queue.put(f"{kind}-{workers}-{n:05d}")
    done = multiprocessing.Value("i", 0)
    procs = [multiprocessing.Process(target=drain, args=(kind, where, f"w{i}", done)) for i in range(workers)]
    start = time.perf_counter()
    for proc in procs:
        proc.start()
    while done.value < tasks:  # type: ignore[attr-defined]
        time.sleep(0.002)
    elapsed = time.perf_counter() - start
    for proc in procs:
        proc.join(timeout=30)
    return tasks / elapsed


def hold_forever(kind: str, where: str, task: str, lease: float, ready: multiprocessing.Event) -> None:  # type: ignore[valid-type]
    queue = make_queue(kind, where)
    assert queue.claim("victim", lease, None) == task
    ready.set()  # type: ignore[attr-defined]
    time.sleep(3600)


def recovery(kind: str, where: str, lease: float) -> float:
    queue = make_queue(kind, where)
    task = f"{kind}-recover"
    queue.put(task)
    ready = multiprocessing.Event()
    victim = multiprocessing.Process(target=hold_forever, args=(kind, where, task, lease, ready))
    victim.start()
    assert ready.wait(30)
    killed = time.perf_counter()
    os.kill(victim.pid or 0, signal.SIGKILL)
    victim.join()
    while queue.claim("rescuer", 30.0) != task:
        time.sleep(0.05)
    return time.perf_counter() - killed


def handover(endpoint: str, scratch: Path, commits: int) -> tuple[float, float, float, float]:
    """Seconds per commit to publish, against a local bundle; seconds to bring the branch, against a fetch."""
    artifacts = S3Artifacts("bench-artifacts", "bench", endpoint)
    artifacts.create_bucket()
    shared = SharedBranches(artifacts)
    machine_a = sample_repo("hello-cli", scratch / "machine-a")
    base = git(machine_a, "rev-parse", "HEAD")
    tasks = open_task_service(load_settings(repo=machine_a))
    task = tasks.start("bench the branch handover", Actor(kind="human", name="bench"))
    for name in ("machine-b", "machine-c"):
        git(scratch, "clone", "-q", str(machine_a), name)
    git(machine_a, "checkout", "-q", "-b", f"shipway/{task.id}")
    publish_s, bundle_s = 0.0, 0.0
    for n in range(commits):
        commit = commit_file(machine_a, f"hello/part_{n}.py", "\n".join(f"x_{i} = {i}" for i in range(2_000)))
        start = time.perf_counter()
        shared.publish(machine_a, task, commit)
        publish_s += time.perf_counter() - start
        start = time.perf_counter()
        git(machine_a, "bundle", "create", "-q", str(scratch / f"local-{n}.bundle"), "HEAD", f"^{base}")
        bundle_s += time.perf_counter() - start
        tasks.store.record(task.id, actor="agent:coder", action="edit_applied", payload={"commit": commit})
    start = time.perf_counter()
    assert shared.bring(WorktreeManager(scratch / "machine-b", scratch / "state-b"), task, tasks.store.events(task.id))
    bring_s = time.perf_counter() - start
    start = time.perf_counter()
    git(scratch / "machine-c", "fetch", "-q", str(machine_a), f"shipway/{task.id}:shipway/{task.id}")
    fetch_s = time.perf_counter() - start
    return publish_s / commits, bundle_s / commits, bring_s, fetch_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--commits", type=int, default=5)
    args = parser.parse_args()
    os.environ.update(FAKE_CREDENTIALS)
    counts = [int(n) for n in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as scratch, moto_server(Path(scratch) / "moto.log") as endpoint:
        SqsAgentQueue("bench", endpoint_url=endpoint).create()
        print(f"throughput: {args.tasks} no-op tasks (claim + release), tasks per second")
        print(f"{'workers':>8} {'sqlite':>10} {'sqs+dynamodb':>14} {'ratio':>8}")
        for workers in counts:
            local = throughput("sqlite", str(Path(scratch) / f"q{workers}.db"), args.tasks, workers)
            shared = throughput("sqs", endpoint, args.tasks, workers)
            print(f"{workers:>8} {local:>10.1f} {shared:>14.1f} {shared / local:>8.2f}")
        print(f"\nrecovery from a SIGKILLed worker (lease {args.lease:g} s), seconds until another worker has it")
        for kind, where in (("sqlite", str(Path(scratch) / "recover.db")), ("sqs", endpoint)):
            took = recovery(kind, where, args.lease)
            print(f"{kind:>12}: {took:6.2f} s  ({took / args.lease:.2f} x the lease)")
        publish, bundle, bring, fetch = handover(endpoint, Path(scratch), args.commits)
        print(f"\nbranch handover through the bucket ({args.commits} commits of ~20 KB each)")
        print(f"  publish per commit: {publish * 1000:7.1f} ms  (local git bundle {bundle * 1000:.1f} ms, "
              f"x{publish / bundle:.1f})")  # fmt: skip
        print(f"  bring on a fresh clone: {bring * 1000:7.1f} ms  (git fetch from a shared disk {fetch * 1000:.1f} ms, "
              f"x{bring / fetch:.1f})")  # fmt: skip


if __name__ == "__main__":
    main()
