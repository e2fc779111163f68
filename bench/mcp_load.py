"""Load: N concurrent MCP clients over streamable HTTP for a fixed time, on 127.0.0.1.

    .venv/bin/python bench/mcp_load.py [--clients 50] [--seconds 30] [--mode legacy|auto]

Each client loops over a mix of 70% list_tasks, 20% get_task and 10% start_task, so the
store takes writes while it serves reads. Printed: requests/s, p50/p99 latency, errors
(should be 0), and whether every task's event chain still verifies afterwards.
Baseline, same run: the same number of clients calling `ping` on a bare mcp-SDK server.
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass, field

import anyio
from mcp import Client

from bench._common import BARE, SHIPWAY, http_process, ms, percentile, seeded_repo


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)


async def _shipway_call(client: Client, rng: random.Random, ids: list[str]) -> bool:
    roll = rng.random()
    if roll < 0.7:
        result = await client.call_tool("list_tasks", {"limit": 20})
    elif roll < 0.9:
        result = await client.call_tool("get_task", {"task_id": rng.choice(ids)})
    else:
        result = await client.call_tool("start_task", {"request": f"load test request {rng.random()}"})
        if not result.is_error and result.structured_content:
            ids.append(result.structured_content["id"])
    return not result.is_error


async def _bare_call(client: Client, rng: random.Random, ids: list[str]) -> bool:
    return not (await client.call_tool("ping", {})).is_error


async def _client_loop(url: str, mode: str, deadline: float, seed: int, ids: list[str], bare: bool, tally: Tally):
    rng = random.Random(seed)
    call = _bare_call if bare else _shipway_call
    try:
        async with Client(url, mode=mode) as client:
            while time.monotonic() < deadline:
                start = time.perf_counter()
                try:
                    ok = await call(client, rng, ids)
                except Exception as exc:  # a load test counts every failure
                    ok = False
                    if len(tally.error_samples) < 5:
                        tally.error_samples.append(repr(exc)[:200])
                tally.latencies.append(time.perf_counter() - start)
                tally.errors += not ok
    except Exception as exc:  # a client that cannot connect is an error too
        tally.errors += 1
        tally.error_samples.append(repr(exc)[:200])


async def run_load(url: str, clients: int, seconds: float, mode: str, ids: list[str], bare: bool) -> Tally:
    tally = Tally()
    deadline = time.monotonic() + seconds
    async with anyio.create_task_group() as group:
        for n in range(clients):
            group.start_soon(_client_loop, url, mode, deadline, n, ids, bare, tally)
    return tally


def report(label: str, tally: Tally, seconds: float) -> float:
    rps = len(tally.latencies) / seconds
    p50, p99 = percentile(tally.latencies, 50), percentile(tally.latencies, 99)
    print(f"  {label:<8} {rps:8.1f} req/s   p50 {ms(p50)}   p99 {ms(p99)}   errors {tally.errors}")
    for sample in tally.error_samples:
        print(f"           e.g. {sample}")
    return rps


def main(clients: int, seconds: float, mode: str) -> None:
    from mcp_server.app import open_deps
    from mcp_server.config import load_settings

    repo = seeded_repo(100)
    service = open_deps(load_settings(repo=repo)).tasks
    ids = service.store.all_ids()
    print(f"mcp_load: {clients} clients x {seconds:.0f} s over streamable HTTP (client mode {mode}), repo {repo}")
    with http_process([SHIPWAY, "serve", "--http", "--port", "0", "--repo", str(repo)]) as url:
        ours = anyio.run(run_load, url, clients, seconds, mode, ids, False)
    with http_process([*BARE, "--http"]) as url:
        bare = anyio.run(run_load, url, clients, seconds, mode, [], True)
    ours_rps = report("shipway", ours, seconds)
    bare_rps = report("bare", bare, seconds)
    print(f"  ratio    {ours_rps / bare_rps:.2f}x the bare server's throughput")
    reports = service.verify_all()
    broken = [r for r in reports if not r.ok]
    print(f"  chains   {len(reports)} tasks verified after the run, {len(broken)} broken")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--mode", choices=["legacy", "auto"], default="legacy")
    options = parser.parse_args()
    main(options.clients, options.seconds, options.mode)
