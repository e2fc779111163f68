"""Agent queue throughput and recovery: the shared AWS queue against the embedded SQLite one.

    .venv/bin/python -m bench.queue [--tasks 200] [--workers 1,2,4] [--lease 2]

Starts a moto server on 127.0.0.1 (real HTTP, the same server the tests use) and measures, in
the same run:
1. Throughput: N worker processes drain a queue of no-op tasks (claim, then release: the
   queue's own cost, no agent work). Tasks per second for SqliteAgentQueue (one file, the
   default) and SqsAgentQueue (SQS + DynamoDB leases), and their ratio.
2. Recovery: a worker claims a task and is SIGKILLed; another worker polling the queue claims
   it. Seconds from the kill to the takeover, against the lease it had to outlive.

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
from mcp_server.sqs_queue import SqsAgentQueue
from tests.helpers.moto_server import FAKE_CREDENTIALS, moto_server


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--lease", type=float, default=2.0)
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


if __name__ == "__main__":
    main()
