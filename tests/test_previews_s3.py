"""S3 deploy previews and their approval gate, all real: git repositories, the preview supervisor
process, the bubblewrap sandbox for the build, and a moto server reached by boto3 over HTTP.

The `lab` fixture points Shipway at moto (SHIPWAY_PREVIEW_S3_ENDPOINT_URL, fake credentials in
the environment the supervisor inherits), stops every preview a test started, and then checks
that no supervisor of it is left running.
"""

from __future__ import annotations

import contextlib
import gc
import getpass
import json
import os
import signal
import sqlite3
import subprocess
import threading
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.exceptions import ClientError
from mcp import Client

from mcp_server.app import ServerDeps, open_deps
from mcp_server.config import load_settings
from mcp_server.errors import UserInputError
from mcp_server.previews import PreviewStatus, preview_dir, read_host, supervisor_alive
from mcp_server.review_gate import GateRefused, live_preview_url
from mcp_server.server import create_server
from mcp_server.tasks.model import Actor, Task
from tests.helpers.gitrepo import git
from tests.helpers.moto_server import FAKE_CREDENTIALS
from tests.helpers.samples import sample_repo
from tests.helpers.servers import SHIPWAY
from tests.helpers.waiting import wait_for
from tests.test_sandbox_tool import needs_bwrap
from tools.edits.blocks import EditBlock
from tools.preview.base import PreviewFailed
from tools.preview.s3 import site_files

ALICE = Actor(kind="human", name="alice")  # starts the tasks
CAROL = Actor(kind="human", name="carol")  # reviews them
AGENT = Actor(kind="agent", name="mcp-client")
BUCKET = "shipway-previews"
SECRET = FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
GREETING = "Hello from the preview app"

pytestmark = [needs_bwrap]


# -- helpers


def anonymous_get(url: str) -> tuple[int, str, str]:
    """GET without credentials or proxies, as a reviewer's browser would: (status, content type, body)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode(errors="replace")


def actions(deps: ServerDeps, task: Task) -> list[str]:
    return [e.action for e in deps.tasks.store.events(task.id)]


def events_of(deps: ServerDeps, task: Task, action: str) -> list[dict[str, Any]]:
    return [dict(e.payload, actor=e.actor) for e in deps.tasks.store.events(task.id) if e.action == action]


def supervisors(task_id: str) -> list[int]:
    """Pids of every running preview supervisor of `task_id` (whatever host.json says)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and supervisor_alive(int(entry.name), task_id):
            found.append(int(entry.name))
    return found


def settled(deps: ServerDeps, status: PreviewStatus) -> PreviewStatus:
    """A deploy's answer once `preview_ready` is recorded. deploy can answer `starting` with no URL (the
    supervisor says ready in host.json before it records preview_ready; see
    test_deploy_answers_ready_with_the_url_once_the_supervisor_says_ready), so tests of other things wait."""
    if status.state != "starting":
        return status
    return wait_for(lambda: (s := deps.previews.status(status.task_id)).state != "starting" and s, 30, "ready")


def head_of(deps: ServerDeps, task: Task) -> str:
    return deps.workspaces.branch_head(deps.tasks.get(task.id))


def commit_greeting(deps: ServerDeps, task: Task, text: str) -> str:
    """The agent commits a new greeting on the task branch; returns the new head."""
    report = deps.workspaces.edit(task.id, AGENT, blocks=[EditBlock(path="greeting.txt", content=text + "\n")])
    assert report.status == "applied" and report.commit, report
    return report.commit


@dataclass
class Lab:
    endpoint: str
    root: Path
    monkeypatch: pytest.MonkeyPatch
    opened: list[ServerDeps] = field(default_factory=list)
    orphans_expected: bool = False
    """Teardown kills supervisors a stop could not reach; it fails the test for them unless this is set."""

    def client(self, service: str) -> Any:
        """A boto3 client of the test's own, with explicit credentials (independent of the environment)."""
        key_id = FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"]
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=key_id, aws_secret_access_key=SECRET)  # fmt: skip

    @property
    def s3(self) -> Any:
        return self.client("s3")

    def public_bucket(self, name: str = BUCKET) -> str:
        """A bucket whose previews/ are publicly readable, as docs/previews.md tells operators to set up."""
        self.s3.create_bucket(Bucket=name)
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
                  "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{name}/previews/*"}]}  # fmt: skip
        self.s3.put_bucket_policy(Bucket=name, Policy=json.dumps(policy))
        return name

    def keys(self, task: Task, bucket: str = BUCKET) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=bucket, Prefix=f"previews/{task.id}/")
        return sorted(item["Key"].removeprefix(f"previews/{task.id}/") for item in listed.get("Contents", []))

    def app(self, name: str = "app") -> Path:
        return sample_repo("preview-app", self.root / name)

    def open(self, repo: Path | None = None, **env: str) -> ServerDeps:
        """Deps over `repo` (a fresh copy of examples/preview-app by default) with SHIPWAY_<NAME> settings.

        The environment is set before anything starts: the supervisor inherits it."""
        for name, value in env.items():
            self.monkeypatch.setenv(f"SHIPWAY_{name.upper()}", value)
        deps = open_deps(load_settings(repo=repo or self.app(f"app{len(self.opened)}")))
        self.opened.append(deps)
        return deps

    def close(self) -> None:
        for deps in self.opened:
            previews = deps.settings.state_path / "previews"
            for directory in sorted(previews.iterdir()) if previews.is_dir() else []:
                with contextlib.suppress(UserInputError):
                    deps.previews.stop(directory.name, ALICE, "test teardown")
                grace = 0.5 if self.orphans_expected else 10  # a preview that ended exits on its own, promptly
                with contextlib.suppress(TimeoutError):
                    wait_for(lambda d=directory: not supervisors(d.name), grace, "the supervisor exits")  # type: ignore[misc]
                left = supervisors(directory.name)
                for pid in left:  # whatever stop could not reach
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
                wait_for(lambda d=directory: not supervisors(d.name), 30, "the supervisors end")  # type: ignore[misc]
                assert self.orphans_expected or not left, (
                    f"a supervisor of task {directory.name} outlived its preview's stop"
                )
            deps.tasks.store.close()
        with warnings.catch_warnings():  # the dropped Popens of failed deploys (see SUPERVISOR_POPEN_DROPPED)
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


@pytest.fixture
def lab(aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    monkeypatch.setenv("SHIPWAY_PREVIEW_S3_ENDPOINT_URL", aws)
    made = Lab(endpoint=aws, root=tmp_path, monkeypatch=monkeypatch)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def bucketed(lab: Lab) -> ServerDeps:
    """Deps over a fresh preview-app, previewing into the public BUCKET."""
    lab.public_bucket()
    return lab.open(preview_s3_bucket=BUCKET)


# -- 1. a person's preview: upload, public URL, events, stop


def test_a_persons_s3_preview_uploads_the_built_site_serves_it_anonymously_and_stop_removes_it(
    lab: Lab, bucketed: ServerDeps
) -> None:
    deps = bucketed
    task = deps.tasks.start("Preview the greeting page", ALICE)
    head = head_of(deps, task)

    status = settled(deps, deps.previews.deploy(task.id, "s3", CAROL))

    url = f"{lab.endpoint}/{BUCKET}/previews/{task.id}/index.html"
    assert (status.state, status.target, status.commit, status.url, status.stale) == ("ready", "s3", head, url, False)
    assert "uploaded 2 file(s) to s3://shipway-previews/previews/" in status.log_tail
    assert lab.keys(task) == ["index.html", "style.css"]
    for key, kind in (("index.html", "text/html"), ("style.css", "text/css")):
        stored = lab.s3.head_object(Bucket=BUCKET, Key=f"previews/{task.id}/{key}")
        assert (stored["ContentType"], stored["CacheControl"]) == (kind, "no-cache")

    code, kind, page = anonymous_get(url)
    assert (code, kind) == (200, "text/html") and f'<h1 id="greeting">{GREETING}</h1>' in page
    code, kind, style = anonymous_get(url.replace("index.html", "style.css"))
    assert (code, kind) == (200, "text/css") and "#1b5e20" in style

    assert actions(deps, task) == ["created", "preview_approved", "preview_started", "preview_ready"]
    [approved] = events_of(deps, task, "preview_approved")
    assert approved == {"target": "s3", "head_sha": head, "actor": "human:carol"}
    [started] = events_of(deps, task, "preview_started")
    assert (started["actor"], started["target"], started["commit"]) == ("human:carol", "s3", head)
    [ready] = events_of(deps, task, "preview_ready")
    assert ready == {"url": url, "target": "s3", "commit": head, "bucket": BUCKET, "prefix": f"previews/{task.id}/",
                     "files": 2, "skipped": [], "actor": "system:previews"}  # fmt: skip
    assert live_preview_url(deps.tasks.store.events(task.id)) == url
    assert deps.previews.status(task.id).state == "ready"

    stopped = deps.previews.stop(task.id, CAROL)

    assert (stopped.state, stopped.url, stopped.reason) == ("stopped", None, "stopped on request")
    assert lab.keys(task) == [], "stopping removes every object of the preview"
    assert anonymous_get(url)[0] in (403, 404)
    assert events_of(deps, task, "preview_stopped") == [{"reason": "stopped on request", "actor": "human:carol"}]
    assert live_preview_url(deps.tasks.store.events(task.id)) is None
    assert not supervisors(task.id)


def test_deploy_answers_ready_with_the_url_once_the_supervisor_says_ready(lab: Lab, bucketed: ServerDeps) -> None:
    """The race made certain: the task store's write lock is held from preview_started until the supervisor
    says ready, so recording preview_ready has to wait (SQLite's busy timeout is 30 s) while deploy answers."""
    deps = bucketed
    task = deps.tasks.start("Preview the greeting page", ALICE)
    answers: list[PreviewStatus | BaseException] = []

    def deploy() -> None:
        try:
            answers.append(deps.previews.deploy(task.id, "s3", CAROL))
        except BaseException as exc:
            answers.append(exc)

    worker = threading.Thread(target=deploy, daemon=True)
    worker.start()
    wait_for(lambda: "preview_started" in actions(deps, task) or answers, 30, "preview_started is recorded")
    writer = sqlite3.connect(deps.settings.state_path / "tasks.db", timeout=30, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        directory = preview_dir(deps.settings, task.id)
        with contextlib.suppress(TimeoutError):  # a fixed supervisor records first, so never says ready here
            wait_for(lambda: read_host(directory).get("phase") == "ready", 20, "host.json says ready")
        worker.join(timeout=3)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    worker.join(timeout=60)
    [answer] = answers
    assert isinstance(answer, PreviewStatus), answer
    assert (answer.state, answer.url) == ("ready", f"{lab.endpoint}/{BUCKET}/previews/{task.id}/index.html")


# -- 2. time to live


def test_an_s3_preview_expires_after_its_ttl_and_its_objects_are_deleted(lab: Lab) -> None:
    lab.public_bucket()
    deps = lab.open(preview_s3_bucket=BUCKET, preview_ttl_s="3")
    task = deps.tasks.start("Preview briefly", ALICE)

    status = settled(deps, deps.previews.deploy(task.id, "s3", CAROL))
    assert status.state == "ready" and status.expires_at is not None and status.started_at is not None
    assert (status.expires_at - status.started_at).total_seconds() == pytest.approx(3, abs=0.5)

    wait_for(lambda: "preview_expired" in actions(deps, task), 30, "preview_expired is recorded")

    [expired] = events_of(deps, task, "preview_expired")
    assert expired["actor"] == "system:previews" and "time to live ran out (3 s)" in expired["reason"]
    assert lab.keys(task) == []
    after = deps.previews.status(task.id)
    assert (after.state, after.url) == ("expired", None)
    wait_for(lambda: not supervisors(task.id), 10, "the supervisor exits")
    assert deps.previews.stop(task.id, CAROL).state == "expired", "stopping an expired preview changes nothing"
    assert "preview_stopped" not in actions(deps, task)


# -- 3. one CloudFormation stack per preview


def test_in_cloudformation_mode_a_preview_gets_a_stack_of_its_own_and_teardown_deletes_it(lab: Lab) -> None:
    deps = lab.open(preview_s3_cloudformation="1")
    task = deps.tasks.start("Preview in a stack", ALICE)
    stack = f"shipway-preview-{task.id}"
    cloudformation = lab.client("cloudformation")

    status = settled(deps, deps.previews.deploy(task.id, "s3", CAROL))

    [described] = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    assert described["StackStatus"] == "CREATE_COMPLETE"
    assert {"Key": "shipway-task", "Value": task.id} in described["Tags"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
    bucket = outputs["BucketName"]
    assert bucket in {b["Name"] for b in lab.s3.list_buckets()["Buckets"]}
    assert status.state == "ready" and status.url == f"{lab.endpoint}/{bucket}/previews/{task.id}/index.html"
    [ready] = events_of(deps, task, "preview_ready")
    assert (ready["bucket"], ready["files"]) == (bucket, 2)
    # moto's CloudFormation ignores the AWS::S3::BucketPolicy resource, so an anonymous GET of the
    # stack bucket's objects is 403 there; the objects are checked with boto3 instead of the URL.
    assert lab.keys(task, bucket) == ["index.html", "style.css"]
    page = lab.s3.get_object(Bucket=bucket, Key=f"previews/{task.id}/index.html")
    assert page["ContentType"] == "text/html" and GREETING in page["Body"].read().decode()

    assert deps.previews.stop(task.id, CAROL).state == "stopped"

    with pytest.raises(ClientError, match="does not exist"):
        cloudformation.describe_stacks(StackName=stack)
    assert bucket not in {b["Name"] for b in lab.s3.list_buckets()["Buckets"]}
    with pytest.raises(ClientError, match="NoSuchBucket|404|Not Found"):
        lab.s3.head_bucket(Bucket=bucket)


# -- 4. the approval gate


def test_an_agents_s3_preview_waits_for_a_person_and_asking_again_records_one_request(
    lab: Lab, bucketed: ServerDeps
) -> None:
    deps = bucketed
    task = deps.tasks.start("Preview please", ALICE)
    head = head_of(deps, task)

    first = deps.previews.deploy(task.id, "s3", AGENT)
    second = deps.previews.deploy(task.id, "s3", AGENT)

    for status in (first, second):
        assert (status.state, status.target, status.commit, status.url) == ("awaiting_approval", "s3", head, None)
        assert f"shipway preview approve {task.id}" in (status.reason or "")
    assert events_of(deps, task, "preview_requested") == [
        {"target": "s3", "head_sha": head, "actor": "agent:mcp-client"}
    ]
    assert actions(deps, task) == ["created", "preview_requested"]
    assert lab.keys(task) == [] and not preview_dir(deps.settings, task.id).exists(), "nothing was built or uploaded"
    assert deps.previews.status(task.id).state == "awaiting_approval"


def test_an_agent_cannot_approve_a_preview_and_the_refusal_is_recorded(lab: Lab, bucketed: ServerDeps) -> None:
    deps = bucketed
    task = deps.tasks.start("Preview please", ALICE)
    deps.previews.deploy(task.id, "s3", AGENT)

    with pytest.raises(GateRefused, match="approve_preview refused: agent:mcp-client is not a person"):
        deps.previews.approve(task.id, AGENT)

    assert actions(deps, task) == ["created", "preview_requested", "gate_refused"]
    [refused] = events_of(deps, task, "gate_refused")
    assert (refused["attempt"], refused["actor"]) == ("approve_preview", "agent:mcp-client")
    assert lab.keys(task) == [] and not preview_dir(deps.settings, task.id).exists()
    assert deps.previews.status(task.id).state == "awaiting_approval", "the request still waits for a person"


def test_a_persons_approval_is_bound_to_the_head_they_saw_and_deploys_the_current_head(
    lab: Lab, bucketed: ServerDeps
) -> None:
    deps = bucketed
    task = deps.tasks.start("Change the greeting", ALICE)
    first = head_of(deps, task)
    assert deps.previews.deploy(task.id, "s3", AGENT).commit == first
    second = commit_greeting(deps, task, "Hello from the second commit")

    with pytest.raises(GateRefused, match=f"you saw {first[:12]} but the head is now {second[:12]}"):
        deps.previews.approve(task.id, CAROL, head_sha=first)
    assert lab.keys(task) == [] and actions(deps, task)[-1] == "gate_refused"

    status = settled(deps, deps.previews.approve(task.id, CAROL, head_sha=second[:10]))

    assert (status.state, status.commit, status.stale) == ("ready", second, False)
    assert lab.keys(task) == ["index.html", "style.css"]
    code, _, page = anonymous_get(status.url or "")
    assert code == 200 and "Hello from the second commit" in page
    lifecycle = [
        (e.action, e.actor) for e in deps.tasks.store.events(task.id) if e.action.startswith(("preview", "gate"))
    ]
    assert lifecycle == [("preview_requested", "agent:mcp-client"), ("gate_refused", "human:carol"),
                         ("preview_approved", "human:carol"), ("preview_started", "human:carol"),
                         ("preview_ready", "system:previews")]  # fmt: skip
    assert events_of(deps, task, "preview_approved")[0]["head_sha"] == second

    with pytest.raises(GateRefused, match="no preview is waiting for approval"):
        deps.previews.approve(task.id, CAROL)
    assert deps.previews.status(task.id).state == "ready", "a refused approval leaves the live preview alone"


def test_approving_when_no_preview_waits_is_refused_and_recorded(lab: Lab, bucketed: ServerDeps) -> None:
    deps = bucketed
    task = deps.tasks.start("Nothing asked yet", ALICE)

    with pytest.raises(GateRefused, match="approve_preview refused: no preview is waiting for approval"):
        deps.previews.approve(task.id, CAROL)

    assert actions(deps, task) == ["created", "gate_refused"]
    assert deps.previews.status(task.id).state == "none" and lab.keys(task) == []


def test_with_approval_none_an_agent_deploys_to_s3_without_a_person(lab: Lab) -> None:
    lab.public_bucket()
    deps = lab.open(preview_s3_bucket=BUCKET, preview_approval="none")
    task = deps.tasks.start("Preview without asking", ALICE)

    status = settled(deps, deps.previews.deploy(task.id, "s3", AGENT))

    assert status.state == "ready" and lab.keys(task) == ["index.html", "style.css"]
    assert actions(deps, task) == ["created", "preview_started", "preview_ready"]
    assert events_of(deps, task, "preview_started")[0]["actor"] == "agent:mcp-client"


def test_with_forbid_self_approval_the_tasks_creator_can_neither_approve_nor_deploy_its_s3_preview(
    lab: Lab,
) -> None:
    lab.public_bucket()
    deps = lab.open(preview_s3_bucket=BUCKET, forbid_self_approval="1")
    task = deps.tasks.start("My own change", ALICE)
    deps.previews.deploy(task.id, "s3", AGENT)

    with pytest.raises(GateRefused, match=r"human:alice started this task .*SHIPWAY_FORBID_SELF_APPROVAL"):
        deps.previews.approve(task.id, ALICE)
    with pytest.raises(GateRefused, match="SHIPWAY_FORBID_SELF_APPROVAL"):
        deps.previews.deploy(task.id, "s3", ALICE)

    assert actions(deps, task) == ["created", "preview_requested", "gate_refused", "gate_refused"]
    assert {e["actor"] for e in events_of(deps, task, "gate_refused")} == {"human:alice"}
    assert lab.keys(task) == [] and not preview_dir(deps.settings, task.id).exists()
    assert deps.previews.status(task.id).state == "awaiting_approval"


@pytest.mark.anyio
async def test_over_mcp_only_the_reviewer_toolset_can_approve_an_s3_preview_the_agent_asked_for(
    lab: Lab, bucketed: ServerDeps
) -> None:
    deps = bucketed
    async with Client(create_server(deps)) as agent, Client(create_server(deps, toolset="reviewer")) as reviewer:
        agent_tools = {tool.name for tool in (await agent.list_tools()).tools}
        reviewer_tools = {tool.name for tool in (await reviewer.list_tools()).tools}
        assert {"deploy_preview", "preview_status", "stop_preview"} <= agent_tools
        assert "approve_preview" not in agent_tools and "approve_preview" in reviewer_tools

        task = Task.model_validate((await agent.call_tool("start_task", {"request": "Preview it"})).structured_content)
        asked = await agent.call_tool("deploy_preview", {"task_id": task.id, "target": "s3"})
        assert not asked.is_error, asked.content
        waiting = PreviewStatus.model_validate(asked.structured_content)
        assert (waiting.state, waiting.url) == ("awaiting_approval", None)
        assert lab.keys(task) == []

        sneaky = await agent.call_tool("approve_preview", {"task_id": task.id})
        assert sneaky.is_error and lab.keys(task) == []

        approved = await reviewer.call_tool("approve_preview", {"task_id": task.id, "head_sha": waiting.commit})
        assert not approved.is_error, approved.content
        ready = settled(deps, PreviewStatus.model_validate(approved.structured_content))
        assert ready.state == "ready" and ready.url and anonymous_get(ready.url)[0] == 200

        seen = PreviewStatus.model_validate(
            (await agent.call_tool("preview_status", {"task_id": task.id})).structured_content
        )
        assert (seen.state, seen.url) == ("ready", ready.url)
        gone = PreviewStatus.model_validate(
            (await agent.call_tool("stop_preview", {"task_id": task.id})).structured_content
        )
        assert gone.state == "stopped"

    assert lab.keys(task) == []
    approvals = events_of(deps, task, "preview_approved")
    assert [a["actor"] for a in approvals] == [f"human:{getpass.getuser()}"]
    assert events_of(deps, task, "preview_stopped")[0]["actor"] == "agent:mcp-client"


# -- 5. safety


def site_repo(lab: Lab, build: str, files: dict[str, str], links: dict[str, str] | None = None) -> Path:
    """A repository whose shipway.toml runs `build` and uploads dist/; `links` are committed symlinks."""
    repo = lab.root / "site"
    repo.mkdir()
    (repo / "shipway.toml").write_text(f'[preview]\nbuild = "{build}"\noutput = "dist"\n', encoding="utf-8")
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text, encoding="utf-8")
    for name, target in (links or {}).items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).symlink_to(target)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "site")
    return repo


def test_symlinks_in_the_build_output_are_not_uploaded_and_are_listed_as_skipped(lab: Lab) -> None:
    lab.public_bucket()
    build = ("mkdir -p dist && printf '<h1>site</h1>' > dist/index.html && ln -s /etc/hostname dist/made && "
             "ln -s /etc dist/etc && ln -s ../secret.txt dist/sibling")  # fmt: skip
    repo = site_repo(lab, build, {"secret.txt": "kept out of the bucket\n", "dist/keep.txt": "committed\n"},
                     links={"dist/committed": "../secret.txt"})  # fmt: skip
    deps = lab.open(repo, preview_s3_bucket=BUCKET)
    task = deps.tasks.start("Preview with links", ALICE)

    status = settled(deps, deps.previews.deploy(task.id, "s3", CAROL))

    assert status.state == "ready"
    assert lab.keys(task) == ["index.html", "keep.txt"], "only regular files are uploaded"
    [ready] = events_of(deps, task, "preview_ready")
    assert (ready["files"], ready["skipped"]) == (2, ["committed", "etc/", "made", "sibling"])
    assert "skipped (not regular files): committed, etc/, made, sibling" in status.log_tail
    hostname = Path("/etc/hostname").read_text(encoding="utf-8").strip()
    for key in lab.keys(task):
        body = lab.s3.get_object(Bucket=BUCKET, Key=f"previews/{task.id}/{key}")["Body"].read().decode()
        assert "kept out of the bucket" not in body and (not hostname or hostname not in body)


def test_a_committed_symlink_to_a_host_file_is_skipped_and_listed_like_one_the_build_made(lab: Lab) -> None:
    lab.public_bucket()
    build = "printf '<h1>site</h1>' > dist/index.html"
    repo = site_repo(lab, build, {"dist/keep.txt": "committed\n"}, links={"dist/leak": "/etc/hostname"})
    deps = lab.open(repo, preview_s3_bucket=BUCKET)
    task = deps.tasks.start("Preview with a committed link", ALICE)

    status = settled(deps, deps.previews.deploy(task.id, "s3", CAROL))

    assert status.state == "ready" and lab.keys(task) == ["index.html", "keep.txt"]
    assert events_of(deps, task, "preview_ready")[0]["skipped"] == ["leak"]


def test_a_build_that_turns_the_output_directory_into_a_link_out_of_the_tree_uploads_nothing(lab: Lab) -> None:
    lab.public_bucket()
    deps = lab.open(site_repo(lab, "ln -s /etc dist", {"index.html": "<h1>root</h1>\n"}), preview_s3_bucket=BUCKET)
    task = deps.tasks.start("Preview /etc", ALICE)

    with pytest.raises(UserInputError, match="output 'dist' points outside the repository"):
        deps.previews.deploy(task.id, "s3", CAROL)

    assert lab.keys(task) == [] and lab.s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
    [failed] = events_of(deps, task, "preview_failed")
    assert "points outside the repository" in failed["reason"]
    wait_for(lambda: not supervisors(task.id), 10, "the supervisor exits")


def test_the_build_sees_no_aws_credentials_and_no_network_and_no_log_holds_the_secret(lab: Lab) -> None:
    lab.public_bucket()
    port = urlsplit(lab.endpoint).port
    probe = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=3).close()\n"
        "    print('reached the endpoint')\n"
        "except OSError as exc:\n"
        "    print('unreachable:', type(exc).__name__)\n"
    )
    build = (
        "mkdir -p dist && env > dist/env.txt && python3 probe.py > dist/net.txt && echo '<h1>x</h1>' > dist/index.html"
    )
    deps = lab.open(site_repo(lab, build, {"probe.py": probe}), preview_s3_bucket=BUCKET)
    task = deps.tasks.start("Look around", ALICE)

    status = settled(deps, deps.previews.deploy(task.id, "s3", CAROL))
    assert status.state == "ready" and lab.keys(task) == ["env.txt", "index.html", "net.txt"]

    def uploaded(key: str) -> str:
        return lab.s3.get_object(Bucket=BUCKET, Key=f"previews/{task.id}/{key}")["Body"].read().decode()

    environment = uploaded("env.txt")
    assert "AWS_" not in environment and SECRET not in environment and lab.endpoint not in environment
    assert [line for line in environment.splitlines() if line.startswith("SHIPWAY_")] == ["SHIPWAY_SANDBOX=1"]
    assert uploaded("net.txt").startswith("unreachable:"), uploaded("net.txt")

    deps.previews.stop(task.id, CAROL)
    directory = preview_dir(deps.settings, task.id)
    assert {"host.log", "preview.log", "job.json", "host.json"} <= {p.name for p in directory.iterdir()}
    for name in ("host.log", "preview.log", "job.json", "host.json"):
        assert SECRET not in (directory / name).read_text(encoding="utf-8"), name
    assert SECRET not in deps.previews.log_text(task.id)
    for event in deps.tasks.store.events(task.id):
        assert SECRET not in json.dumps(event.payload), event.action


def test_output_over_the_file_or_byte_caps_is_refused_and_fifos_are_skipped(tmp_path: Path) -> None:
    site = tmp_path / "dist"
    site.mkdir()
    for name in ("a.html", "b.css"):
        (site / name).write_text("12345", encoding="utf-8")
    os.mkfifo(site / "pipe")  # opening it to upload would block forever

    files, skipped = site_files(site, max_files=2, max_bytes=10)
    assert [(f.key, f.size) for f in files] == [("a.html", 5), ("b.css", 5)] and skipped == ["pipe"]

    with pytest.raises(PreviewFailed, match=r"over the upload limit \(1 files"):
        site_files(site, max_files=1, max_bytes=10)
    with pytest.raises(PreviewFailed, match="over the upload limit .*point \\[preview\\] output at the built site"):
        site_files(site, max_files=2, max_bytes=9)


def test_the_s3_target_without_a_bucket_is_refused_naming_the_setting_and_records_nothing(lab: Lab) -> None:
    deps = lab.open()
    task = deps.tasks.start("No bucket", ALICE)

    for actor in (CAROL, AGENT):
        with pytest.raises(UserInputError, match="SHIPWAY_PREVIEW_S3_BUCKET"):
            deps.previews.deploy(task.id, "s3", actor)

    assert actions(deps, task) == ["created"] and not preview_dir(deps.settings, task.id).exists()


def test_a_bucket_that_does_not_exist_fails_the_deploy_with_nosuchbucket_and_records_it(lab: Lab) -> None:
    deps = lab.open(preview_s3_bucket="missing-bucket")
    task = deps.tasks.start("Missing bucket", ALICE)

    with pytest.raises(UserInputError, match="preview of .* failed: .*NoSuchBucket") as failure:
        deps.previews.deploy(task.id, "s3", CAROL)

    assert "s3://missing-bucket/previews/" in str(failure.value)
    [failed] = events_of(deps, task, "preview_failed")
    assert failed["actor"] == "system:previews" and "NoSuchBucket" in failed["reason"]
    status = deps.previews.status(task.id)
    assert (status.state, status.url) == ("failed", None) and "NoSuchBucket" in (status.reason or "")
    wait_for(lambda: not supervisors(task.id), 10, "the supervisor exits")
    assert SECRET not in (preview_dir(deps.settings, task.id) / "host.log").read_text(encoding="utf-8")


def forget_credentials(lab: Lab, *, keep_region: bool) -> None:
    """No credentials anywhere boto3 looks: environment, shared files, instance metadata."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        if not (keep_region and name in ("AWS_REGION", "AWS_DEFAULT_REGION")):
            lab.monkeypatch.delenv(name)
    lab.monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(lab.root / "no-credentials"))
    lab.monkeypatch.setenv("AWS_CONFIG_FILE", str(lab.root / "no-config"))
    lab.monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_without_aws_credentials_the_deploy_fails_saying_so_without_any_secret(lab: Lab) -> None:
    lab.public_bucket()
    forget_credentials(lab, keep_region=True)
    deps = lab.open(preview_s3_bucket=BUCKET)
    task = deps.tasks.start("No credentials", ALICE)

    with pytest.raises(UserInputError, match="no AWS credentials found") as failure:
        deps.previews.deploy(task.id, "s3", CAROL)

    assert SECRET not in str(failure.value) and "AWS_SECRET_ACCESS_KEY" in str(failure.value)
    [failed] = events_of(deps, task, "preview_failed")
    assert "no AWS credentials found" in failed["reason"] and SECRET not in json.dumps(failed)
    assert lab.keys(task) == []
    wait_for(lambda: not supervisors(task.id), 10, "the supervisor exits")


def test_a_configured_bucket_preview_needs_no_aws_region(lab: Lab) -> None:
    lab.public_bucket()
    lab.monkeypatch.delenv("AWS_REGION")
    lab.monkeypatch.delenv("AWS_DEFAULT_REGION")
    lab.monkeypatch.setenv("AWS_CONFIG_FILE", str(lab.root / "no-config"))
    deps = lab.open(preview_s3_bucket=BUCKET)
    task = deps.tasks.start("No region", ALICE)

    status = settled(deps, deps.previews.deploy(task.id, "s3", CAROL))

    assert status.state == "ready" and lab.keys(task) == ["index.html", "style.css"]


# -- 6. a task that ends takes its preview down


def test_aborting_a_task_removes_its_live_s3_preview(lab: Lab, bucketed: ServerDeps) -> None:
    deps = bucketed
    task = deps.tasks.start("Abandoned change", ALICE)
    assert settled(deps, deps.previews.deploy(task.id, "s3", CAROL)).state == "ready" and lab.keys(task)

    deps.tasks.abort(task.id, "not needed after all", ALICE)

    assert lab.keys(task) == []
    assert events_of(deps, task, "preview_stopped") == [{"reason": "the task is aborted", "actor": "system:previews"}]
    assert deps.previews.status(task.id).state == "stopped" and not supervisors(task.id)


def test_a_live_s3_preview_is_still_removed_after_an_agent_asks_for_a_newer_head(
    lab: Lab, bucketed: ServerDeps
) -> None:
    lab.orphans_expected = True  # the bug leaves a supervisor that stop cannot reach; teardown kills it
    deps = bucketed
    task = deps.tasks.start("Change the greeting", ALICE)
    assert settled(deps, deps.previews.deploy(task.id, "s3", CAROL)).state == "ready"
    commit_greeting(deps, task, "Hello from a newer commit")
    assert deps.previews.deploy(task.id, "s3", AGENT).state == "awaiting_approval"

    deps.tasks.abort(task.id, "not needed after all", ALICE)

    assert lab.keys(task) == [], "the task ended, yet its preview is still published"
    assert not supervisors(task.id)


def test_approving_a_newer_head_replaces_the_live_preview_instead_of_running_two(
    lab: Lab, bucketed: ServerDeps
) -> None:
    lab.orphans_expected = True  # the bug leaves a supervisor that stop cannot reach; teardown kills it
    deps = bucketed
    task = deps.tasks.start("Change the greeting", ALICE)
    assert settled(deps, deps.previews.deploy(task.id, "s3", CAROL)).state == "ready"
    [old] = supervisors(task.id)
    commit_greeting(deps, task, "Hello from a newer commit")
    deps.previews.deploy(task.id, "s3", AGENT)

    status = settled(deps, deps.previews.approve(task.id, CAROL))

    assert status.state == "ready"
    assert old not in supervisors(task.id) and len(supervisors(task.id)) == 1


# -- 7. the CLI


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SHIPWAY, *args], capture_output=True, text=True, timeout=90, env=dict(os.environ))


def test_the_cli_starts_an_s3_preview_as_the_person_at_the_terminal_and_stops_it(lab: Lab) -> None:
    lab.public_bucket()
    deps = lab.open(preview_s3_bucket=BUCKET)  # the CLI reads the same SHIPWAY_* environment
    repo = str(deps.settings.repo)
    task = deps.tasks.start("From the terminal", ALICE)

    started = cli("preview", "start", task.id, "--target", "s3", "--repo", repo, "--json")

    assert started.returncode == 0, started.stderr
    shown = json.loads(started.stdout)
    if shown["state"] == "starting":  # see test_deploy_answers_ready_with_the_url_once_the_supervisor_says_ready
        shown = settled(deps, PreviewStatus.model_validate(shown)).model_dump(mode="json")
    assert (shown["state"], shown["target"]) == ("ready", "s3")
    assert shown["url"] == f"{lab.endpoint}/{BUCKET}/previews/{task.id}/index.html"
    code, _, page = anonymous_get(shown["url"])
    assert code == 200 and GREETING in page
    assert events_of(deps, task, "preview_approved")[0]["actor"] == f"human:{getpass.getuser()}"

    stopped = cli("preview", "stop", task.id, "--repo", repo, "--json")

    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout)["state"] == "stopped"
    assert lab.keys(task) == [] and not supervisors(task.id)
