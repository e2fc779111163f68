"""Waking Shipway's agents: an autonomous task goes on the queue whenever it needs them.

That is when it starts, and after each decision that hands it back to them: a plan sent back
(planning), a plan approved (coding), changes requested or a red CI (needs_changes). Tasks
waiting for people (plan_review, review, approved) are not queued; the person's decision
wakes them. With `agent_launch=spawn` (the default) a wake-up also starts a worker process for
the task; with `external`, a long-running `shipway worker` picks it up.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from contextvars import ContextVar

from mcp_server.agent_journal import RUNS_DIR
from mcp_server.agent_queue import AgentQueue
from mcp_server.config import Settings
from mcp_server.tasks.model import Task, TaskState

log = logging.getLogger(__name__)
S = TaskState
AGENT_STATES = frozenset({S.REQUESTED, S.PLANNING, S.CODING, S.TESTING, S.NEEDS_CHANGES, S.PR_OPEN, S.CI})


running_agents: ContextVar[str | None] = ContextVar("running_agents", default=None)
"""The task whose agents the current context runs: their own moves need no wake-up."""


class AgentDispatch:
    def __init__(self, settings: Settings, queue: AgentQueue) -> None:
        self.settings = settings
        self.queue = queue

    def wake(self, task: Task) -> None:
        if not task.autonomous or task.state not in AGENT_STATES or running_agents.get() == task.id:
            return
        if self.queue.put(task.id) and self.settings.agent_launch == "spawn":
            launch_worker(self.settings, task.id)


def launch_worker(settings: Settings, task_id: str) -> None:
    """Start `shipway worker --task ID` in its own session, logging to <state>/agent-runs/<task>/worker.log."""
    logs = settings.state_path / RUNS_DIR / task_id
    logs.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "mcp_server", "worker", "--task", task_id, "--repo", str(settings.repo)]
    env = {**os.environ, "SHIPWAY_STATE_DIR": str(settings.state_path)}
    with (logs / "worker.log").open("ab") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   env=env, start_new_session=True)  # fmt: skip
    log.info("started worker pid %d for task %s", process.pid, task_id)
