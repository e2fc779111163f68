"""Many `shipway worker` processes on one shared queue (SQS + DynamoDB on a real moto server).

Each task replays examples/replays/hello-cli-shout.json from its own place in the script
(SHIPWAY_MODEL_SCRIPT_PER_TASK=1) with plans approved by policy, so an autonomous task runs
by itself up to `review`: plan, edit, tests, PR, CI. The tests check that several worker
processes share the work, that each task is done exactly once (one PR, the edit applied once,
every step recorded once, a verified chain), and that a task whose worker is SIGKILLed is
taken over by another worker and still completes exactly once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest

from mcp_server.app import ServerDeps, open_deps
from mcp_server.config import load_settings
from mcp_server.tasks.model import Actor, Event, TaskState
from tests.helpers.samples import EXAMPLES, sample_repo
from tests.helpers.servers import SHIPWAY
from tests.test_sandbox_tool import needs_bwrap

pytestmark = [needs_bwrap, pytest.mark.slow]

SCRIPT = EXAMPLES / "replays" / "hello-cli-shout.json"
REQUEST = "Add a --shout flag that prints the greeting in capitals"
ALICE = Actor(kind="human", name="alice")


@pytest.fixture
def team(aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerDeps]:
    """A hello-cli repository whose tasks and queue live on the moto server, as a team's would."""
    settings = {
        "SHIPWAY_STORE": "aws", "SHIPWAY_AWS_ENDPOINT_URL": aws, "SHIPWAY_AWS_TABLE_PREFIX": "team",
        "SHIPWAY_AWS_ARTIFACTS_BUCKET": "team-artifacts",
        "SHIPWAY_AGENT_LAUNCH": "external", "SHIPWAY_PLAN_REVIEW": "auto", "SHIPWAY_AGENT_LEASE_S": "3",
        "SHIPWAY_MODEL_SCRIPT": str(SCRIPT), "SHIPWAY_MODEL_SCRIPT_PER_TASK": "1",
        "SHIPWAY_TEST_PYTHON": sys.executable,
    }  # fmt: skip
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    repo = sample_repo("hello-cli", tmp_path / "hello")
    made = subprocess.run([SHIPWAY, "tables", "create", "--repo", str(repo)], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert made.returncode == 0, made.stderr
    deps = open_deps(load_settings(repo=repo))
    yield deps
    deps.ci.close()


@contextmanager
def workers(repo: Path, logs: Path, count: int, first: int = 0) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = []
    for n in range(first, first + count):
        with (logs / f"worker-{n}.log").open("wb") as out:
            command = [SHIPWAY, "worker", "--repo", str(repo), "--poll", "0.2"]
            procs.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
    try:
        yield procs
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def wait_for_the_edit(deps: ServerDeps, task_id: str) -> None:
    """Until the coder has applied its edit (a recorded step) and goes on to the tests."""
    deadline = time.monotonic() + 120
    while True:
        steps = [e for e in deps.tasks.store.events(task_id) if e.action == "agent_step"]
        if any(any(c["name"] == "apply_edit" for c in e.payload["calls"]) for e in steps):
            return
        assert time.monotonic() < deadline, "the coder never got to its edit"
        time.sleep(0.02)


def kill_the_holder(deps: ServerDeps, task_id: str, procs: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    lease = deps.queue.lease(task_id)
    assert lease is not None and lease.worker is not None
    holder = int(lease.worker.split(":")[1])
    victim = next(p for p in procs if p.pid == holder)
    os.killpg(victim.pid, signal.SIGKILL)
    assert victim.wait(timeout=10) == -signal.SIGKILL
    return victim


def wait_until(deps: ServerDeps, task_ids: list[str], state: TaskState, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        states = {t: deps.tasks.get(t).state for t in task_ids}
        if all(s == state for s in states.values()):
            return
        stuck = {t: s for t, s in states.items() if s != state}
        assert time.monotonic() < deadline, f"after {timeout_s:g} s these tasks are not {state}: {stuck}"
        time.sleep(0.3)


def assert_done_exactly_once(deps: ServerDeps, task_id: str) -> list[Event]:
    events = deps.tasks.store.events(task_id)
    actions = [e.action for e in events]
    assert actions.count("pr_opened") == 1 and actions.count("edit_applied") == 1, actions
    assert actions.count("plan_proposed") == 1 and actions.count("ci_passed") == 1, actions
    keys = [(e.payload["round"], e.payload["step"]) for e in events if e.action == "agent_step"]
    assert len(keys) == len(set(keys)) == 6, f"every scripted step recorded once: {keys}"
    assert deps.tasks.verify(task_id).ok
    return events


def handled_by(logs: Path) -> dict[str, set[str]]:
    """Which tasks each worker process reported finishing a run of (its log lines)."""
    found: dict[str, set[str]] = {}
    for log in sorted(logs.glob("worker-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if ": task " in line and "worker " in line:
                found.setdefault(log.stem, set()).add(line.split(": task ", 1)[1].split(":", 1)[0])
    return found


def test_three_worker_processes_drain_a_queue_of_tasks_each_done_exactly_once(team: ServerDeps, tmp_path: Path) -> None:
    task_ids = [team.tasks.start(REQUEST, ALICE, autonomous=True).id for _ in range(6)]
    with workers(team.settings.repo, tmp_path, 3):
        wait_until(team, task_ids, TaskState.REVIEW, timeout_s=300)
        deadline = time.monotonic() + 30
        while any(team.queue.lease(t) is not None for t in task_ids):  # each worker records why it stopped, lets go
            assert time.monotonic() < deadline, [team.queue.lease(t) for t in task_ids]
            time.sleep(0.2)
    for task_id in task_ids:
        assert_done_exactly_once(team, task_id)
        assert team.tasks.store.events(task_id)[-1].action == "agent_waiting"
        pr = team.gate.pr(task_id)
        assert pr.ci == "success" and pr.state == "open"
    s3 = boto3.client("s3", endpoint_url=team.settings.aws_endpoint_url)
    for task_id in task_ids:  # the transcripts any machine resumes from are in the shared bucket, not on this disk
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="team-artifacts", Prefix=f"team/agent-runs/{task_id}/")
                .get("Contents", [])]  # fmt: skip
        assert len(keys) == 2 + 6, keys  # each round's opening, and one line per step
    assert not list(team.settings.state_path.glob("agent-runs/*/round-*.jsonl"))
    busy = {name: tasks for name, tasks in handled_by(tmp_path).items() if tasks}
    assert len(busy) >= 2, f"the work was shared between workers: {busy}"
    assert set().union(*busy.values()) == set(task_ids)


def test_a_task_whose_worker_is_sigkilled_mid_task_is_taken_over_and_done_exactly_once(
    team: ServerDeps, tmp_path: Path
) -> None:
    task_id = team.tasks.start(REQUEST, ALICE, autonomous=True).id
    with workers(team.settings.repo, tmp_path, 2) as procs:
        wait_for_the_edit(team, task_id)
        killed_at = time.monotonic()
        holder = kill_the_holder(team, task_id, procs).pid
        wait_until(team, [task_id], TaskState.REVIEW, timeout_s=180)
        recovered_s = time.monotonic() - killed_at
        deadline = time.monotonic() + 30
        while team.queue.lease(task_id) is not None:  # the survivor records why it stopped and lets go
            assert time.monotonic() < deadline, team.queue.lease(task_id)
            time.sleep(0.2)
    events = assert_done_exactly_once(team, task_id)
    survivor = next(p for p in procs if p.pid != holder)
    assert task_id in handled_by(tmp_path).get(f"worker-{procs.index(survivor)}", set()), "the other worker took over"
    assert recovered_s < 120, recovered_s
    assert not any(e.action == "agent_crashed" for e in events)


def test_a_worker_on_another_machine_takes_a_task_over_from_the_shared_bucket_alone(
    team: ServerDeps, tmp_path: Path
) -> None:
    """Machine A's worker dies after its edit and A is gone; machine B, with its own clone and
    state, rebuilds the task's branch from the bundle in S3 and finishes the task."""
    machine_a = team.settings.repo
    machine_b = tmp_path / "machine-b"
    subprocess.run(["git", "clone", "-q", str(machine_a), str(machine_b)], check=True, timeout=60)
    task_id = team.tasks.start(REQUEST, ALICE, autonomous=True).id
    with workers(machine_a, tmp_path, 1) as procs:
        wait_for_the_edit(team, task_id)
        kill_the_holder(team, task_id, procs)
    edit = next(e for e in team.tasks.store.events(task_id) if e.action == "edit_applied")
    commit = edit.payload["commit"]
    gone = machine_a.rename(tmp_path / "machine-a-is-gone")  # its disk, state and branches with it
    b = open_deps(load_settings(repo=machine_b))
    try:
        assert not (machine_b / ".git" / "refs" / "heads" / "shipway").exists(), "B starts without the branch"
        with workers(machine_b, tmp_path, 1, first=1):
            wait_until(b, [task_id], TaskState.REVIEW, timeout_s=180)
            deadline = time.monotonic() + 30
            while b.queue.lease(task_id) is not None:
                assert time.monotonic() < deadline, b.queue.lease(task_id)
                time.sleep(0.2)
        events = assert_done_exactly_once(b, task_id)
        assert task_id in handled_by(tmp_path).get("worker-1", set()), "machine B's worker finished it"
        assert not any(e.action == "agent_crashed" for e in events)
        branch = subprocess.run(["git", "-C", str(machine_b), "log", "--format=%H", f"main..shipway/{task_id}"],
                                capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
        assert branch == [commit], "B's branch is A's edit, fetched, not redone"
        pr = b.gate.pr(task_id)
        assert pr.head_sha == commit and pr.ci == "success" and pr.state == "open"
        shown = subprocess.run(["git", "-C", str(machine_b), "show", f"{commit}:hello/cli.py"], capture_output=True,
                               text=True, check=True).stdout  # fmt: skip
        assert "shout" in shown
        s3 = boto3.client("s3", endpoint_url=team.settings.aws_endpoint_url)
        patch = s3.get_object(Bucket="team-artifacts", Key=f"team/diffs/{task_id}/{commit}.patch")["Body"].read()
        assert b"--shout" in patch and commit.encode() in patch
        runs = [e.payload["run_id"] for e in events if e.action == "tests_run"]
        assert runs and b.tests.report(runs[-1]).task_id == task_id
        assert gone.is_dir()
    finally:
        b.ci.close()
