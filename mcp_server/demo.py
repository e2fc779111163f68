"""`shipway demo`: the whole loop on a copy of examples/hello-cli, replayed, in about a minute.

No model is called: the planner's and the coder's answers come from a recorded script
(examples/replays/), which a `ScriptedChatModel` replays, and the screen says so. Everything
else is real: the MCP tools, the sandbox, the tests, the local forge, CI, the review gate and
the review page. The person's two decisions (approve the plan, approve the PR) are taken by a
reviewer named `demo-reviewer`, as you would take them with `shipway plan approve` and the
review page.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import anyio

from agents.scripted import ScriptedChatModel
from mcp_server.agent_worker import Worker
from mcp_server.app import ServerDeps, open_deps
from mcp_server.cli_format import event_line
from mcp_server.config import load_settings
from mcp_server.http_app import REVIEW_PATH, bind_socket, build_http_app, serve_http
from mcp_server.reviewers import ReviewerStore
from mcp_server.server import create_server
from mcp_server.serving import base_url
from mcp_server.tasks.model import Actor

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SAMPLE = "hello-cli"
SCRIPT = EXAMPLES / "replays" / "hello-cli-shout.json"
REQUEST = "Add a --shout flag that prints the greeting in capitals"
DEVELOPER = Actor(kind="human", name="demo-developer")
REVIEWER = Actor(kind="human", name="demo-reviewer")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def make_sample(workdir: Path, sample: str = SAMPLE) -> Path:
    """A git repository in `workdir` holding a copy of examples/<sample>, committed on main."""
    repo = workdir / sample
    shutil.copytree(EXAMPLES / sample, repo)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=Shipway demo", "-c", "user.email=demo@shipway.invalid", "commit", "-q", "-m",
         f"{sample} sample")  # fmt: skip
    return repo


def run_demo(workdir: Path | None = None, keep_serving: bool = False, say: Callable[[str], None] = print) -> int:
    workdir = workdir or Path(tempfile.mkdtemp(prefix="shipway-demo-"))
    repo = make_sample(workdir)
    settings = load_settings(repo=repo, model_script=SCRIPT, agent_launch="external", embedder="none",
                             test_python=sys.executable, port=0)  # fmt: skip
    deps = open_deps(settings)
    model = ScriptedChatModel.from_file(SCRIPT, persist=False)
    say("=" * 72)
    say(f"REPLAY: the model's answers are {model.script.label}.")
    say("Tools, sandbox, tests, CI, the review gate and the merge are real.")
    say("=" * 72)
    say(f"repository   {repo} (a copy of examples/{SAMPLE})")
    page = _serve_review_page(deps)
    token = ReviewerStore(settings.state_path).add(REVIEWER.name)
    say(f"review page  {page}   (token for {REVIEWER.name}: {token})")
    try:
        return _loop(deps, model, page, say, keep_serving)
    finally:
        deps.ci.close()


def _loop(deps: ServerDeps, model: ScriptedChatModel, page: str, say: Callable[[str], None], keep: bool) -> int:
    worker = Worker(deps, model, name="demo-worker")
    task = deps.tasks.start(REQUEST, DEVELOPER, autonomous=True)
    say(f"\n1. request    {REQUEST!r} -> task {task.id}")
    outcome = anyio.run(worker.run_queued, task.id)[-1]
    plan = deps.gate.plan(task.id).plan
    assert plan is not None, outcome
    say(f"2. plan       proposed by the planner; {outcome.reason}")
    say("\n" + "\n".join("   " + line for line in plan.markdown().splitlines()) + "\n")
    deps.gate.approve_plan(task.id, "Looks right.", REVIEWER)
    say(f"3. approval   {REVIEWER} approved the plan (as with `shipway plan approve {task.id}`)")
    outcome = anyio.run(worker.run_queued, task.id)[-1]
    diff = deps.workspaces.diff(task.id)
    say("4. diff       " + ", ".join(f"{f.path} (+{f.added} -{f.removed})" for f in diff.files))
    pr = deps.gate.pr(task.id)
    say(f"5. tests/PR   {pr.title!r} on {pr.head_branch} at {pr.head_sha[:12]}; CI {pr.ci}; {outcome.reason}")
    say(f"6. review     {page}/tasks/{task.id}")
    deps.gate.approve_pr(task.id, "Ship it.", REVIEWER, pr.head_sha)
    merged = deps.gate.merge_pr(task.id, REVIEWER)
    say(f"7. merge      {REVIEWER} approved {pr.head_sha[:12]} and merged: {merged.merge_commit}")
    model.assert_done()
    say("\nThe task's audit log (hash-chained; `shipway task verify` checks it):")
    for event in deps.tasks.store.events(task.id):
        say("  " + event_line(event))
    chain = deps.tasks.verify(task.id)
    say(f"\nchain {'verified' if chain.ok else 'BROKEN'}; main now has:\n")
    say(_git(Path(deps.settings.repo), "show", "main:hello/cli.py"))
    if keep:
        say(f"Serving the review page at {page} until Ctrl+C.")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0 if chain.ok else 1


def _serve_review_page(deps: ServerDeps) -> str:
    sock = bind_socket(deps.settings.host, 0)
    app = build_http_app(create_server(deps), deps)
    thread = threading.Thread(target=serve_http, args=(app, sock, "WARNING", lambda: None), daemon=True)
    thread.start()
    return base_url(deps.settings.host, sock.getsockname()[1]) + REVIEW_PATH
