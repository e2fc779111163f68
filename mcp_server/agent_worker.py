"""`Worker`: runs Shipway's planner and coder on queued tasks (`shipway worker`, `task continue`).

The worker holds a task's lease while the driver (agents/driver.py) advances it, through an
in-process MCP session on the agent toolset, acting as `agent:shipway`: every call meets the
same tools and gates as an editor's agent. When the driver stops, the worker writes down why:
- waiting for a person: `agent_waiting` with what the person should do;
- a budget used up, or the agents gave up: the task fails with that reason;
- the model endpoint failed: `agent_paused`, the task stays where it is, and
  `shipway task continue ID` resumes it from its last completed step.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from agents.budget import Budget, BudgetExceeded
from agents.chat import ChatModel, ModelError
from agents.driver import ALL_TOOLS, CI_WAIT_S, AgentGaveUp, Driver, DriverLimits, Outcome
from agents.loop import AgentContext
from agents.openai_model import OpenAIChatModel
from agents.scripted import ScriptedChatModel
from agents.toolbox import Toolbox
from mcp_server.agent_dispatch import running_agents
from mcp_server.agent_journal import LeaseLost, TaskJournal
from mcp_server.app import ServerDeps, open_transcripts
from mcp_server.config import Settings
from mcp_server.errors import UserInputError
from mcp_server.server import create_server
from mcp_server.tasks.machine import TERMINAL
from mcp_server.tasks.model import Actor, TaskState
from mcp_server.tasks.service import NO_MODEL

log = logging.getLogger(__name__)
AGENT = Actor(kind="agent", name="shipway")
SYSTEM = Actor(kind="system", name="agents")


def build_model(settings: Settings) -> ChatModel:
    if settings.model_script is not None:
        return ScriptedChatModel.from_file(settings.model_script)
    if not settings.model:
        raise UserInputError(NO_MODEL)
    key = settings.model_api_key.get_secret_value() if settings.model_api_key else None
    return OpenAIChatModel(settings.model, base_url=settings.model_base_url, api_key=key,
                           timeout_s=settings.model_timeout_s, max_retries=settings.model_max_retries)  # fmt: skip


def budget_of(settings: Settings) -> Budget:
    return Budget(max_steps=settings.agent_max_steps, max_wall_s=settings.agent_max_wall_s,
                  max_tokens=settings.agent_max_tokens, max_cost_usd=settings.agent_max_cost_usd)  # fmt: skip


def worker_name(slot: int = 0) -> str:
    """`host:pid`, and `host:pid:slot` for the other slots of a worker running several tasks at once."""
    return f"{socket.gethostname()}:{os.getpid()}" + (f":{slot}" if slot else "")


class Worker:
    """Runs the agents; their tool calls go to an in-process server, or to `server_url` over HTTP.

    Over HTTP (a worker on another machine than the server) the calls carry `http_token` as a
    bearer token, and the server's agent toolset acts as `agent:mcp-client`.
    """

    def __init__(self, deps: ServerDeps, model: ChatModel, name: str | None = None, server_url: str | None = None,
                 http_token: str | None = None) -> None:  # fmt: skip
        self.deps = deps
        self.model = model
        self.name = name or worker_name()
        self.server_url = server_url
        self.http_token = http_token
        self.lease_s = deps.settings.agent_lease_s
        self.limits = DriverLimits(ci_retries=deps.settings.agent_ci_retries,
                                   review_rounds=deps.settings.agent_review_rounds)  # fmt: skip

    async def run_queued(self, task_id: str | None = None) -> list[Outcome]:
        """Claim and run queued tasks (only `task_id`, if given) until none is left; their outcomes."""
        outcomes = []
        while (claimed := self.deps.queue.claim(self.name, self.lease_s, task_id)) is not None:
            while True:
                try:
                    with _plain_errors():
                        async with self._leased(claimed):
                            outcome = await self.run(claimed)
                except LeaseLost as exc:  # another worker has the task now; it is theirs to finish
                    log.warning("%s", exc)
                    outcomes.append(Outcome(status="paused", state=self.deps.tasks.get(claimed).state, reason=str(exc)))
                    break
                outcomes.append(outcome)
                log.info("worker %s: task %s: %s (%s)", self.name, claimed, outcome.status, outcome.state)
                # Woken while it ran (by its own moves, or a decision it may not have seen)? Go round again:
                # reading the state first and releasing after could lose a decision landing in between.
                if not self.deps.queue.release(claimed, self.name):
                    break
                if self.deps.queue.claim(self.name, self.lease_s, claimed) is None:
                    break
        return outcomes

    async def serve(self, poll_s: float = 2.0, concurrency: int = 1) -> None:
        """Run queued tasks as they come, `concurrency` at a time, until cancelled."""
        if concurrency > 1:
            async with anyio.create_task_group() as group:
                for slot in range(concurrency):
                    group.start_soon(self._slot(slot).serve, poll_s)
            return
        while True:
            try:
                ran = await self.run_queued()
            except Exception:  # recorded on the task (agent_crashed); its lease runs out and it is retried
                log.exception("worker %s: a task crashed; going on with the queue", self.name)
                ran = [Outcome(status="failed", state=TaskState.FAILED, reason="crashed")]
            if not ran:
                await anyio.sleep(poll_s)

    def _slot(self, slot: int) -> Worker:
        return Worker(self.deps, self.model, worker_name(slot), self.server_url, self.http_token)

    @asynccontextmanager
    async def _leased(self, task_id: str) -> AsyncIterator[None]:
        async def renew() -> None:
            while True:
                await anyio.sleep(self.lease_s / 3)  # the heartbeat
                self.deps.queue.renew(task_id, self.name, self.lease_s)

        async with anyio.create_task_group() as group:
            group.start_soon(renew)
            try:
                yield
            finally:
                group.cancel_scope.cancel()

    async def run(self, task_id: str) -> Outcome:
        """Advance one task (already claimed) as far as the agents can, and record why it stopped."""
        tasks = self.deps.tasks
        task = tasks.get(task_id)
        if task.state in TERMINAL:
            return Outcome(status="finished", state=task.state, reason=task.reason or f"the task is {task.state}")
        own_moves = running_agents.set(task.id)  # the agents' own moves wake nobody (the server's tasks inherit it)
        try:
            outcome = await self._drive(task.id)
        finally:
            running_agents.reset(own_moves)
        if outcome.status != "waiting":
            return outcome
        newest = tasks.store.events(task.id, after_seq=tasks.get(task.id).version - 1)
        said = (
            bool(newest) and newest[-1].action == "agent_waiting" and newest[-1].payload.get("reason") == outcome.reason
        )
        if not said:  # going round again at the same wait says nothing new
            tasks.record(task.id, SYSTEM, "agent_waiting", {"reason": outcome.reason})
        return outcome

    async def _drive(self, task_id: str) -> Outcome:
        tasks = self.deps.tasks
        queue = self.deps.queue
        fence = lambda: queue.renew(task_id, self.name, self.lease_s) or queue.lease(task_id) is None  # noqa: E731
        journal = TaskJournal(tasks, task_id, open_transcripts(self.deps.settings), fence)
        model = self.model
        if isinstance(model, ScriptedChatModel) and self.deps.settings.model_script_per_task:
            model = model.at(journal.spend().steps)  # this task's place in the script: its completed model calls
        async with self._session() as client:
            toolbox = await Toolbox.open(client, ALL_TOOLS, {"task_id": task_id})
            ctx = AgentContext(model, toolbox, journal, budget_of(self.deps.settings),
                               self.deps.settings.model_prices)  # fmt: skip
            try:
                return await Driver(ctx, self.limits).run()
            except (BudgetExceeded, AgentGaveUp) as exc:
                return self._fail(task_id, str(exc))
            except ModelError as exc:
                tasks.record(task_id, SYSTEM, "agent_paused", {"reason": str(exc), "retryable": exc.retryable})
                resume = f"`shipway task continue {task_id}` resumes from the last completed step"
                return Outcome(status="paused", state=tasks.get(task_id).state, reason=f"{exc}; {resume}")
            except LeaseLost:
                raise
            except Exception as exc:  # a cancellation or Ctrl-C is not a crash: the lease runs out, continue resumes
                log.exception("the agents crashed on task %s", task_id)
                tasks.record(task_id, SYSTEM, "agent_crashed", {"error": f"{type(exc).__name__}: {exc}"[:1_000]})
                raise

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[Client]:
        if self.server_url is None:
            async with Client(create_server(self.deps, "agent", actor=AGENT)) as client:
                yield client
            return
        headers = {"Authorization": f"Bearer {self.http_token}"} if self.http_token else {}
        refused: list[int] = []  # the SDK reports a 401 as a bare "error response": keep the status

        async def note(response: httpx2.Response) -> None:
            if response.status_code in (401, 403):
                refused.append(response.status_code)

        async with AsyncExitStack() as stack:
            try:
                # A tool call may legitimately take as long as a test run or a CI wait.
                longest = max(self.deps.settings.test_timeout_s, CI_WAIT_S) + 120
                http = await stack.enter_async_context(httpx2.AsyncClient(
                    headers=headers, timeout=httpx2.Timeout(30.0, read=longest), event_hooks={"response": [note]}
                ))  # fmt: skip
                # legacy mode: the initialize handshake once, instead of ~45 ms of discovery per request
                transport = streamable_http_client(self.server_url, http_client=http)
                client = await stack.enter_async_context(Client(transport, mode="legacy"))
            except Exception as exc:
                why = f"it answered HTTP {refused[0]}; set SHIPWAY_HTTP_TOKEN to its token" if refused else _why(exc)
                raise UserInputError(f"cannot use the Shipway server at {self.server_url}: {why}") from None
            yield client

    def _fail(self, task_id: str, reason: str) -> Outcome:
        task = self.deps.tasks.get(task_id)
        if task.state not in TERMINAL:
            self.deps.tasks.record(task_id, SYSTEM, "failed", {"reason": reason}, TaskState.FAILED, reason=reason)
        return Outcome(status="failed", state=TaskState.FAILED, reason=reason)


def _why(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"it answered HTTP {exc.response.status_code}"
    if isinstance(exc, httpx2.TransportError):
        return f"it cannot be reached ({type(exc).__name__}); is it running, and is the URL its MCP URL?"
    return f"{type(exc).__name__}: {str(exc)[:300]}"


@contextmanager
def _plain_errors() -> Iterator[None]:
    """Let an error from the agents out as itself, not wrapped in the task groups it crossed."""
    try:
        yield
    except BaseExceptionGroup as group:
        inner: BaseException = group
        while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
            inner = inner.exceptions[0]
        if inner is group:
            raise
        raise inner from None


def take_over(deps: ServerDeps, task_id: str) -> str:
    """Queue an autonomous task again after a crash; refused while a live worker holds it. Its full id."""
    task = deps.tasks.get(task_id)
    if not task.autonomous:
        raise UserInputError(f"task {task.id} is driven by an MCP client's agent, not by Shipway's; carry on with "
                             "the tools (get_task shows where it stands)")  # fmt: skip
    if task.state in TERMINAL:
        raise UserInputError(f"task {task.id} already ended ({task.state}); start a new one")
    lease = deps.queue.lease(task.id)
    if lease is not None and lease.live():
        host, _, pid = (lease.worker or "").partition(":")
        pid = pid.partition(":")[0]
        if host != socket.gethostname() or _alive(int(pid or 0)):
            raise UserInputError(f"worker {lease.worker} is running task {task.id}; wait for it (`shipway task log "
                                 f"{task.id} --follow`), or stop it and run this again")  # fmt: skip
        deps.queue.expire(task.id)
    deps.queue.put(task.id)
    return task.id


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
