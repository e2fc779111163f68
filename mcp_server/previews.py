"""Deploy previews of a task: started, watched, approved when policy says so, and torn down.

A preview is of one commit, the task branch's head when it was asked for. Its files are
copied to `<state>/previews/<task>/tree`, and a supervisor process (mcp_server/preview_host.py)
owns it from then on: it builds and serves (local) or uploads (s3), records `preview_ready`
with the URL, and records how it ended (`preview_failed`, `preview_expired`). Asking here
records `preview_started` and, on a stop, `preview_stopped`. Previews stop when their task
merges, is rejected, fails or is aborted, and when their TTL runs out.

Policy (`SHIPWAY_PREVIEW_APPROVAL`, default `s3`): a preview on AWS is published beyond this
machine, so it waits for a person. An agent's request is recorded as `preview_requested`; a
human's `approve_preview` (or a human deploying it themselves) goes through the review gate's
identity rules, like any other approval, and deploys the current head.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from mcp_server.config import Settings
from mcp_server.errors import UserInputError
from mcp_server.review_gate import ReviewGate
from mcp_server.tasks.machine import TERMINAL
from mcp_server.tasks.model import Actor, Event, Task, utcnow
from mcp_server.tasks.service import TaskService
from mcp_server.workspaces import TaskWorkspaces
from sandbox.base import Sandbox
from sandbox.worktree import BRANCH_PREFIX
from tools.forge.base import ForgeUnavailable
from tools.preview.base import LOG_FILE, SOCKET_DIR, TARGETS, PreviewFailed, PreviewJob, PreviewTarget, log_tail
from tools.preview.local import LocalPreview, kill_sandbox
from tools.preview.s3 import S3Preview, S3Settings

PREVIEWS_DIR = "previews"
RELAY_IN_SANDBOX = Path("/run/shipway/relay.py")
LIFECYCLE = ("preview_requested", "preview_approved", "preview_started", "preview_ready", "preview_stopped",
             "preview_failed", "preview_expired")  # fmt: skip
RUNNING = ("preview_started", "preview_ready", "preview_stopped", "preview_failed", "preview_expired")
"""The events of a preview that ran (a request or an approval says nothing about what runs)."""
LIVE = ("preview_started", "preview_ready")
SYSTEM = Actor(kind="system", name="previews")
STOP_GRACE_S = 30.0
POLL_S = 0.1
DEPENDENCY_DIRS = ("node_modules", ".venv")
SAVED_LOG_CHARS = 1 << 20

_supervisors: set[subprocess.Popen[bytes]] = set()
"""Supervisors this process started: held so a running one is never garbage-collected (Python warns), and
reaped when they end (no zombies in a long-running server)."""

PreviewState = Literal["none", "awaiting_approval", "starting", "ready", "stopped", "failed", "expired"]


class PreviewStatus(BaseModel):
    task_id: str
    state: PreviewState
    target: str | None = None
    url: str | None = Field(default=None, description="Open this while the preview is ready")
    commit: str | None = Field(default=None, description="The commit the preview shows")
    stale: bool = Field(default=False, description="The task's head has moved on since")
    started_at: datetime | None = None
    expires_at: datetime | None = None
    reason: str | None = Field(default=None, description="Why it ended, or what it waits for")
    log_tail: str = ""
    log_uri: str | None = None


def target_options(settings: Settings, name: str) -> dict[str, Any]:
    """What a target needs from the settings, written into the job (so every process uses the same)."""
    if name != "s3":
        return {}
    return dataclasses.asdict(S3Settings(
        bucket=settings.preview_s3_bucket, prefix=settings.preview_s3_prefix,
        endpoint_url=settings.preview_s3_endpoint_url, region=settings.preview_s3_region,
        public_url=settings.preview_s3_public_url, cloudformation=settings.preview_s3_cloudformation))  # fmt: skip


def target_for(job: PreviewJob, sandbox: Sandbox) -> PreviewTarget:
    if job.target == "local":
        return LocalPreview(sandbox)
    return S3Preview(sandbox, S3Settings(**job.options))


def preview_dir(settings: Settings, task_id: str) -> Path:
    return settings.state_path / PREVIEWS_DIR / task_id


def read_host(directory: Path) -> dict[str, object]:
    """What the supervisor last wrote to host.json ({} before it wrote anything)."""
    try:
        data = json.loads((directory / "host.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def reap_supervisors() -> None:
    """Forget (and reap) the supervisors this process started that have ended."""
    _supervisors.difference_update({p for p in _supervisors if p.poll() is not None})


def supervisor_alive(pid: object, task_id: str) -> bool:
    """The supervisor of `task_id` still runs as `pid` (a reused pid, or a zombie, is not it)."""
    if not isinstance(pid, int):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"mcp_server.preview_host" in cmdline and task_id.encode() in cmdline


def _newest(events: list[Event], actions: tuple[str, ...]) -> Event | None:
    return next((e for e in reversed(events) if e.action in actions), None)


class PreviewService:
    def __init__(self, tasks: TaskService, workspaces: TaskWorkspaces, gate: ReviewGate, settings: Settings) -> None:
        self.tasks = tasks
        self.workspaces = workspaces
        self.gate = gate
        self.settings = settings
        tasks.on_end.append(self.on_task_end)

    # -- asking for one

    def deploy(self, task_id: str, target: str, actor: Actor) -> PreviewStatus:
        if target not in TARGETS:
            raise UserInputError(f"unknown preview target {target[:40]!r}; use one of: {', '.join(TARGETS)}")
        if target == "s3" and not (self.settings.preview_s3_bucket or self.settings.preview_s3_cloudformation):
            raise UserInputError(
                "the s3 target is not configured: set SHIPWAY_PREVIEW_S3_BUCKET (plus AWS credentials the usual boto3 "
                "way), or SHIPWAY_PREVIEW_S3_CLOUDFORMATION=1; see docs/previews.md"
            )
        task, _ = self.workspaces.live_worktree(task_id)
        head = self.workspaces.branch_head(task)
        current = self.status(task.id)
        if current.state in ("starting", "ready") and current.commit == head and current.target == target:
            return current  # already showing this very head
        if self._needs_approval(target):
            if actor.kind != "human":
                return self._request(task, target, head, actor)
            self.gate.check_reviewer(task, actor, "approve_preview")
            self.tasks.record(task.id, actor, "preview_approved", {"target": target, "head_sha": head})
        return self._start(task, target, head, actor)

    def approve(self, task_id: str, actor: Actor, head_sha: str | None = None) -> PreviewStatus:
        """A person approves the pending preview request; the current head is deployed at once."""
        task = self.gate.live(task_id)
        self.gate.check_reviewer(task, actor, "approve_preview")
        events = self.tasks.store.events(task.id)
        newest = _newest(events, LIFECYCLE)
        if newest is None or newest.action != "preview_requested":
            raise self.gate.refuse(task, actor, "approve_preview", "no preview is waiting for approval")
        head = self.workspaces.branch_head(task)
        if head_sha and not (len(head_sha.strip()) >= 7 and head.startswith(head_sha.strip().lower())):
            raise self.gate.refuse(task, actor, "approve_preview",
                                   f"you saw {head_sha[:12]} but the head is now {head[:12]}; look again")  # fmt: skip
        target = str(newest.payload.get("target", "s3"))
        self.tasks.record(task.id, actor, "preview_approved", {"target": target, "head_sha": head})
        return self._start(task, target, head, actor)

    def _needs_approval(self, target: str) -> bool:
        policy = self.settings.preview_approval
        return policy == "all" or (policy == "s3" and target == "s3")

    def _request(self, task: Task, target: str, head: str, actor: Actor) -> PreviewStatus:
        newest = _newest(self.tasks.store.events(task.id), LIFECYCLE)
        same = newest is not None and newest.action == "preview_requested" and newest.payload == {
            "target": target, "head_sha": head}  # fmt: skip
        if not same:
            self.tasks.record(task.id, actor, "preview_requested", {"target": target, "head_sha": head})
        return self.status(task.id)

    # -- starting

    def _start(self, task: Task, target: str, head: str, actor: Actor) -> PreviewStatus:
        self._end(task, "replaced by a new preview", actor)
        self._prepare(task, target, head)
        directory = preview_dir(self.settings, task.id)
        process = self._launch(task.id, directory)
        pid = process.pid
        started = utcnow()
        expires = started + timedelta(seconds=self.settings.preview_ttl_s)
        self.tasks.record(task.id, actor, "preview_started", {"target": target, "commit": head, "pid": pid,
                                                              "expires_at": expires.isoformat()})  # fmt: skip
        limit = self.settings.preview_build_timeout_s + self.settings.preview_ready_timeout_s + 120
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            host = read_host(directory)
            if host.get("phase") == "ready":
                self._tell_pr(task, head, str(host.get("url")))
                return self.status(task.id)
            if host.get("phase") == "ended" or process.poll() is not None:
                status = self.status(task.id)
                tail = f"\n--- the preview's log ends with:\n{status.log_tail}" if status.log_tail else ""
                raise UserInputError(f"the {target} preview of {head[:12]} failed: {status.reason}{tail}")
            time.sleep(POLL_S)
        self._end(task, f"it was not ready after {limit:g} s", SYSTEM)
        raise UserInputError(f"the {target} preview of {head[:12]} was not ready after {limit:g} s; it was stopped "
                             f"(see `shipway preview status {task.id}`)")  # fmt: skip

    def _prepare(self, task: Task, target: str, head: str) -> PreviewJob:
        directory = preview_dir(self.settings, task.id)
        if directory.exists():
            shutil.rmtree(directory)
        _, worktree = self.workspaces.live_worktree(task.id)
        manager = self.workspaces.manager(worktree.repo)
        tree = directory / "tree"
        left_out = manager.snapshot(head, tree, worktree.uid)
        # The run directory stays Shipway's: the sandbox writes the log it is given but cannot swap it for a link,
        # and its socket lives in sock/, the one directory it owns.
        run_dir = Path(tempfile.mkdtemp(prefix=f"shipway-preview-{task.id}-"))
        run_dir.chmod(0o755)
        (run_dir / SOCKET_DIR).mkdir(mode=0o700)
        note = f"left out of the snapshot (links out of the tree, special files): {', '.join(left_out[:20])}\n"
        (run_dir / LOG_FILE).write_text(note if left_out else "", encoding="utf-8")
        readonly = [(Path(__file__).resolve().parent.parent / "tools" / "preview" / "relay.py", RELAY_IN_SANDBOX)]
        if sys.prefix != sys.base_prefix:
            readonly.append((Path(sys.prefix), Path(sys.prefix)))  # Shipway's own interpreter, for relay and servers
        for name in DEPENDENCY_DIRS:  # installed dependencies of the task's checkout (not in git)
            source = next((p / name for p in (worktree.path, manager.repo) if (p / name).is_dir()), None)
            if source is not None and not (tree / name).exists():
                readonly.append((source, tree / name))
        if worktree.uid is not None:
            for path in (run_dir / SOCKET_DIR, run_dir / LOG_FILE):
                os.chown(path, worktree.uid, worktree.uid)
        job = PreviewJob(task_id=task.id, target=target, commit=head, tree=tree, run_dir=run_dir, uid=worktree.uid,  # type: ignore[arg-type]
                         hidden=[manager.repo, self.settings.state_path, manager.common_dir], readonly=readonly,
                         python=sys.executable, relay=RELAY_IN_SANDBOX, ttl_s=self.settings.preview_ttl_s,
                         ready_timeout_s=self.settings.preview_ready_timeout_s,
                         build_timeout_s=self.settings.preview_build_timeout_s,
                         options=target_options(self.settings, target), left_out=left_out)  # fmt: skip
        (directory / "job.json").write_text(job.model_dump_json(indent=2), encoding="utf-8")
        return job

    def _launch(self, task_id: str, directory: Path) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "mcp_server.preview_host", "--repo", str(self.settings.repo),
                   "--task", task_id]  # fmt: skip
        env = {**os.environ, "SHIPWAY_STATE_DIR": str(self.settings.state_path)}
        with (directory / "host.log").open("ab") as out:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                       env=env, start_new_session=True)  # fmt: skip
        reap_supervisors()
        _supervisors.add(process)
        return process

    def _tell_pr(self, task: Task, head: str, url: str) -> None:
        """An open PR hears about the preview (its body links previews that were up when it opened)."""
        events = self.tasks.store.events(task.id)
        if not any(e.action == "pr_opened" for e in events) or task.state in TERMINAL:
            return
        forge = self.gate.forge_for(task)
        with contextlib.suppress(ForgeUnavailable):  # the link is in the task's log and on the review page anyway
            forge.comment(BRANCH_PREFIX + task.id, f"**Preview** of `{head[:12]}`: {url}")

    # -- looking and stopping

    def status(self, task_id: str) -> PreviewStatus:
        task = self.tasks.get(task_id)
        events = self.tasks.store.events(task.id)
        if _newest(events, LIFECYCLE) is None:
            return PreviewStatus(task_id=task.id, state="none")
        running = _newest(events, RUNNING)
        if running is not None and running.action in LIVE:
            self._reconcile(task)
            events = self.tasks.store.events(task.id)
        return self._view(task, events)

    def _view(self, task: Task, events: list[Event]) -> PreviewStatus:
        view = self._running_view(task, events)
        request = _newest(events, LIFECYCLE)
        if request is None or request.action != "preview_requested":
            return view
        target = request.payload.get("target")
        waits = f"a {target} preview waits for a person: `shipway preview approve {task.id}` (or approve_preview)"
        if view.url:
            waits += f"; the preview of {str(view.commit)[:12]} stays up at {view.url} until then"
        return view.model_copy(update={"state": "awaiting_approval", "target": target, "stale": False,
                                       "commit": request.payload.get("head_sha"), "reason": waits})  # fmt: skip

    def _running_view(self, task: Task, events: list[Event]) -> PreviewStatus:
        base = PreviewStatus(task_id=task.id, state="none", log_uri=f"shipway://tasks/{task.id}/preview/log")
        newest = _newest(events, RUNNING)
        started = _newest(events, ("preview_started",))
        if started is None or newest is None:
            return base
        commit = started.payload.get("commit")
        expires = started.payload.get("expires_at")
        head = self.workspaces.branch_head(task) if task.state not in TERMINAL else commit
        update: dict[str, object] = {
            "target": started.payload.get("target"), "commit": commit, "started_at": started.at,
            "expires_at": datetime.fromisoformat(expires) if isinstance(expires, str) else None,
            "stale": head != commit, "log_tail": self.log_text(task.id)[-1_500:],
        }  # fmt: skip
        if newest.action in LIVE:
            ready = newest.action == "preview_ready"
            update |= {"state": "ready" if ready else "starting", "url": newest.payload.get("url") if ready else None}
        else:
            state = {"preview_stopped": "stopped", "preview_failed": "failed", "preview_expired": "expired"}
            update |= {"state": state.get(newest.action, "stopped"), "reason": newest.payload.get("reason")}
        return base.model_copy(update=update)

    def _reconcile(self, task: Task) -> None:
        """A live preview whose supervisor is gone without a word (killed, a reboot) is failed and cleaned up."""
        directory = preview_dir(self.settings, task.id)
        host = read_host(directory)
        started = _newest(self.tasks.store.events(task.id), ("preview_started",))
        pid = host.get("pid", started.payload.get("pid") if started else None)
        if supervisor_alive(pid, task.id) or host.get("phase") == "ended":
            return
        if not host and started is not None and (utcnow() - started.at).total_seconds() < 10:
            return  # just launched; it has not written host.json yet
        self._cleanup(task.id)
        self.tasks.record(task.id, SYSTEM, "preview_failed",
                          {"reason": f"its supervisor process (pid {pid}) ended without reporting; the preview was "
                                     "cleaned up"})  # fmt: skip

    def stop(self, task_id: str, actor: Actor, reason: str = "stopped on request") -> PreviewStatus:
        task = self.tasks.get(task_id)
        if not self._end(task, reason, actor):
            status = self.status(task.id)
            if status.state in ("starting", "ready"):
                return status
            return status.model_copy(update={"reason": status.reason or "no preview is running"})
        return self.status(task.id)

    def _end(self, task: Task, reason: str, actor: Actor) -> bool:
        """Stop the task's live preview, if any, and record it; False when none was live."""
        newest = _newest(self.tasks.store.events(task.id), RUNNING)
        if newest is None or newest.action not in LIVE:
            return False
        directory = preview_dir(self.settings, task.id)
        started = _newest(self.tasks.store.events(task.id), ("preview_started",))
        pid = read_host(directory).get("pid", started.payload.get("pid") if started else None)  # before host.json
        if supervisor_alive(pid, task.id):
            assert isinstance(pid, int)
            os.kill(pid, 15)
            deadline = time.monotonic() + STOP_GRACE_S
            while supervisor_alive(pid, task.id) and time.monotonic() < deadline:
                time.sleep(POLL_S)
            if supervisor_alive(pid, task.id):
                os.kill(pid, 9)
            reap_supervisors()
        self._cleanup(task.id)
        newest = _newest(self.tasks.store.events(task.id), RUNNING)
        if newest is not None and newest.action in LIVE:  # the supervisor did not record an ending first
            self.tasks.record(task.id, actor, "preview_stopped", {"reason": reason})
        return True

    def _cleanup(self, task_id: str) -> None:
        """Whatever a preview left: sandbox processes, its socket directory, S3 objects it uploaded.
        Idempotent; the supervisor normally did all of it already."""
        directory = preview_dir(self.settings, task_id)
        try:
            job = PreviewJob.model_validate_json((directory / "job.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if job.target == "local":
            kill_sandbox(job.socket_path)
        elif read_host(directory).get("phase") != "ended":
            with contextlib.suppress(PreviewFailed):  # nothing more can be done here; the log says what failed
                target_for(job, self.workspaces.sandbox).stop(job)
        save_log(job, directory)

    def log_text(self, task_id: str) -> str:
        directory = preview_dir(self.settings, task_id)
        try:
            job = PreviewJob.model_validate_json((directory / "job.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return ""
        live = job.log_path if job.log_path.exists() else directory / LOG_FILE
        return log_tail(live, 200_000)

    def on_task_end(self, task: Task) -> None:
        self._end(task, f"the task is {task.state}", SYSTEM)


def save_log(job: PreviewJob, directory: Path) -> None:
    """Keep the preview's log with the task and remove the short-lived socket directory."""
    if job.run_dir.exists():
        kept = log_tail(job.log_path, SAVED_LOG_CHARS)  # never copyfile: see tools/preview/base.py open_plain
        if kept:
            (directory / LOG_FILE).write_text(kept, encoding="utf-8")
        shutil.rmtree(job.run_dir, ignore_errors=True)
