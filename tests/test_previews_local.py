"""Local deploy previews, all real: the supervisor process, bubblewrap with a private network
namespace, the relay inside it, the loopback forwarder outside, real HTTP from the host.

The `lab` fixture stops every preview a test started and then checks that nothing of it is
left running (no supervisor, no process naming the preview's relay socket).
"""

from __future__ import annotations

import contextlib
import gc
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from mcp import Client

from mcp_server.app import ServerDeps, open_deps
from mcp_server.config import load_settings
from mcp_server.errors import UserInputError
from mcp_server.previews import PreviewStatus, preview_dir, read_host, supervisor_alive
from mcp_server.review_gate import live_preview_url
from mcp_server.server import create_server
from mcp_server.tasks.model import Actor, Task
from tests.helpers.gitrepo import git, init_repo
from tests.helpers.samples import sample_repo
from tests.helpers.servers import SHIPWAY
from tests.helpers.waiting import wait_for
from tools.edits.blocks import EditBlock
from tools.errors import ToolInputError
from tools.preview.base import PreviewJob
from tools.preview.detect import PreviewConfig, load_preview_config, read_preview_config, serve_plan, static_dir
from tools.preview.forward import PortForwarder

ALICE = Actor(kind="human", name="alice")
CODER = Actor(kind="agent", name="coder")
SYSTEM = "system:previews"
RELAY_IN_SANDBOX = "/run/shipway/relay.py"
STATIC_PAGE = "<!doctype html>\n<h1>Static preview, first commit</h1>\n"
PY = "/usr/bin/python3-for-tests"  # detection only puts the interpreter into argv; it never runs it

# Serves on $PORT. GET /connect?host=H&port=N tries a TCP connection from inside the sandbox;
# GET /exists?path=P says whether the sandbox can see a path. Anything else answers "idle".
PROBE = """\
import json, os, socket
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse


def connect(host, port):
    try:
        with socket.create_connection((host, port), timeout=3):
            return "connected"
    except ConnectionRefusedError:
        return "refused"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"


class Probe(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/connect":
            body = {"outcome": connect(query["host"], int(query["port"]))}
        elif url.path == "/exists":
            body = {"exists": os.path.exists(query["path"])}
        else:
            body = {"outcome": "idle"}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Probe).serve_forever()
"""


# -- helpers: waiting, HTTP, processes


def get(url: str, timeout_s: float = 10) -> tuple[int, str]:
    """GET over plain http.client (no proxy settings apply): (status, body)."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        connection.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def answers(url: str) -> bool:
    try:
        get(url, timeout_s=3)
    except (OSError, http.client.HTTPException):
        return False
    return True


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    uid: int
    argv: list[str]


def processes() -> list[Proc]:
    """Every live process on the host (zombies and kernel threads, with no command line, left out)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if not raw:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        argv = [part.decode(errors="replace") for part in raw.rstrip(b"\0").split(b"\0")]
        found.append(Proc(int(entry.name), int(fields["PPid"]), int(fields["Uid"].split()[0]), argv))
    return found


def descendants(pid: int) -> list[Proc]:
    everything = processes()
    found: list[Proc] = []
    parents = {pid}
    while children := [p for p in everything if p.ppid in parents and p not in found]:
        found += children
        parents = {p.pid for p in children}
    return found


def naming(needle: str) -> list[Proc]:
    return [p for p in processes() if any(needle in arg for arg in p.argv)]


def job_of(deps: ServerDeps, task_id: str) -> PreviewJob:
    return PreviewJob.model_validate_json((preview_dir(deps.settings, task_id) / "job.json").read_text())


def host_of(deps: ServerDeps, task_id: str) -> dict[str, object]:
    return read_host(preview_dir(deps.settings, task_id))


def sandbox_of(job: PreviewJob) -> list[Proc]:
    """The preview's sandbox processes: bwrap and the relay carry its socket path on their command line."""
    return naming(str(job.socket_path))


def lifecycle(deps: ServerDeps, task_id: str) -> list[tuple[str, str]]:
    return [(e.action, e.actor) for e in deps.tasks.store.events(task_id) if e.action.startswith("preview_")]


def newest_preview_event(deps: ServerDeps, task_id: str) -> Any:
    return [e for e in deps.tasks.store.events(task_id) if e.action.startswith("preview_")][-1]


def wait_state(deps: ServerDeps, task_id: str, state: str, timeout_s: float = 30) -> PreviewStatus:
    """preview_status (which also reconciles) until it reports `state`."""

    def check() -> PreviewStatus | None:
        status = deps.previews.status(task_id)
        return status if status.state == state else None

    return wait_for(check, timeout_s, f"the preview of {task_id} is {state}")


def deploy(deps: ServerDeps, task_id: str, actor: Actor) -> PreviewStatus:
    """A local preview of the task's head: deploy returns once it answers, ready and with its URL."""
    status = deps.previews.deploy(task_id, "local", actor)
    assert status.state == "ready" and status.url is not None, status
    return status


def relay_answers(job: PreviewJob) -> bool:
    """The preview answers HTTP through the relay's Unix socket (root may connect to it)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(2)
            client.connect(str(job.socket_path))
            client.sendall(b"GET / HTTP/1.0\r\nHost: preview\r\n\r\n")
            return client.recv(16).startswith(b"HTTP/")
    except OSError:
        return False


def shipway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SHIPWAY, *args], capture_output=True, text=True, timeout=90, env=dict(os.environ))


# -- the lab: repositories to preview, and a teardown that proves nothing leaked


class Lab:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.opened: list[ServerDeps] = []

    def open(self, repo: Path) -> ServerDeps:
        deps = open_deps(load_settings(repo=repo))
        self.opened.append(deps)
        return deps

    def app(self) -> ServerDeps:
        """examples/preview-app: an ASGI app served by uvicorn, with a `[preview] build` step."""
        return self.open(sample_repo("preview-app", self.tmp_path / "app"))

    def repo(self, files: dict[str, str], name: str = "site") -> ServerDeps:
        path = init_repo(self.tmp_path / name)
        for relative, text in files.items():
            (path / relative).parent.mkdir(parents=True, exist_ok=True)
            (path / relative).write_text(text, encoding="utf-8")
        git(path, "add", "--all")
        git(path, "commit", "-q", "-m", "what to preview")
        return self.open(path)

    def static(self) -> ServerDeps:
        """A bare index.html: the quickest preview (Python's http.server)."""
        return self.repo({"index.html": STATIC_PAGE})

    def task(self, deps: ServerDeps) -> Task:
        return deps.tasks.start("Show me a preview of this", ALICE)

    def close(self) -> None:
        """Stop every preview, then give each supervisor a moment to exit (it records how its preview
        ended, writes host.json and only then exits); whatever is still running after that leaked."""
        left: list[Callable[[], list[str]]] = []
        try:
            for deps in self.opened:
                root = deps.settings.state_path / "previews"
                for directory in sorted(root.iterdir()) if root.is_dir() else []:
                    deps.previews.stop(directory.name, ALICE, "the test is over")
                    left.append(self._running(deps, directory))
        finally:
            for deps in self.opened:
                deps.tasks.store.close()
        leaks = [leak for running in left for leak in running()]
        if leaks:
            with contextlib.suppress(TimeoutError):
                wait_for(lambda: not [leak for running in left for leak in running()], 15, "previews end")
            leaks = [leak for running in left for leak in running()]
        assert not leaks, f"previews left running after their test: {leaks}"

    @staticmethod
    def _running(deps: ServerDeps, directory: Path) -> Callable[[], list[str]]:
        pid = read_host(directory).get("pid")
        try:
            socket_path = str(job_of(deps, directory.name).socket_path)
        except (OSError, ValueError):
            socket_path = None

        def running() -> list[str]:
            found = [f"supervisor {pid} of {directory.name}"] if supervisor_alive(pid, directory.name) else []
            if socket_path is not None:
                found += [f"{p.pid} {' '.join(p.argv)[:200]}" for p in naming(socket_path)]
            return found

        return running


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """Every test that previews for real uses this; the detection tests need no sandbox."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    built = Lab(tmp_path)
    yield built
    built.close()


# -- 1. it answers


def test_a_local_preview_of_the_example_app_answers_http_from_the_host(lab: Lab) -> None:
    deps = lab.app()
    task = lab.task(deps)
    status = deploy(deps, task.id, ALICE)

    assert (status.state, status.target, status.commit, status.stale) == ("ready", "local", task.base_commit, False)
    assert status.url is not None and status.url.startswith("http://127.0.0.1:")
    code, page = get(status.url)
    assert code == 200 and "Hello from the preview app" in page
    assert get(status.url + "health") == (200, "ok\n")
    assert get(status.url + "style.css")[0] == 200

    events = deps.tasks.store.events(task.id)
    previews = [e for e in events if e.action.startswith("preview_")]
    assert [(e.action, e.actor) for e in previews] == [("preview_started", "human:alice"), ("preview_ready", SYSTEM)]
    ready = previews[1].payload
    assert (ready["url"], ready["commit"], ready["source"]) == (status.url, task.base_commit, "app.py defines app")
    assert live_preview_url(events) == status.url
    assert status.started_at is not None and status.expires_at is not None
    assert abs((status.expires_at - status.started_at).total_seconds() - deps.settings.preview_ttl_s) < 1
    assert "$ python3 build.py" in status.log_tail and "Uvicorn running" in status.log_tail
    assert deps.previews.status(task.id).url == status.url


def test_live_preview_url_is_none_until_ready_and_after_the_preview_ends(lab: Lab) -> None:
    deps = lab.static()
    task = lab.task(deps)
    status = deploy(deps, task.id, ALICE)
    events = deps.tasks.store.events(task.id)
    starting = [e for e in events if e.action != "preview_ready"]
    assert live_preview_url(starting) is None, "preview_started carries no URL yet"
    assert live_preview_url(events) == status.url
    deps.previews.stop(task.id, ALICE)
    assert live_preview_url(deps.tasks.store.events(task.id)) is None


# -- 2. isolation


def test_the_preview_runs_unprivileged_and_reaches_no_host_port_but_its_own(lab: Lab) -> None:
    host_ip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with host_ip:
        try:
            host_ip.connect(("192.0.2.1", 9))  # picks the outgoing interface; nothing is sent
            address: str | None = host_ip.getsockname()[0]
        except OSError:
            address = None
    with socket.create_server(("0.0.0.0", 0)) as listener:
        port = listener.getsockname()[1]
        deps = lab.repo({"probe.py": PROBE, "shipway.toml": '[preview]\ncommand = "python3 probe.py"\n'}, "probe")
        task = lab.task(deps)
        status = deploy(deps, task.id, ALICE)
        assert status.state == "ready" and status.url is not None
        forwarder = urlsplit(status.url).port
        assert forwarder is not None

        def probe(host: str, target: int) -> str:
            code, body = get(f"{status.url}connect?host={host}&port={target}")
            assert code == 200
            return str(json.loads(body)["outcome"])

        assert probe("127.0.0.1", 8000) == "connected", "the probe reaches its own port (the probe works)"
        assert probe("127.0.0.1", port) == "refused"
        assert probe("127.0.0.1", forwarder) == "refused", "not even Shipway's own forwarder"
        if address is not None and not address.startswith("127."):
            assert "unreachable" in probe(address, port).lower()
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # no connection from the sandbox ever arrived
        with socket.create_connection(("127.0.0.1", port), timeout=3):
            accepted = wait_for(lambda: _accept(listener), 5, "the listener accepts a host connection")
            accepted.close()  # the listener itself works: the host can reach it

    job = job_of(deps, task.id)
    relay = [p for p in sandbox_of(job) if p.uid == job.uid and p.argv[1:2] == [RELAY_IN_SANDBOX]]
    assert len(relay) == 1
    command = descendants(relay[0].pid)
    assert len([p for p in command if p.argv[-1] == "probe.py" and "python3" in p.argv[0]]) == 1
    assert job.uid is not None and job.uid != 0
    assert {p.uid for p in [*relay, *command]} == {job.uid}, "the preview runs as the task's unprivileged uid"
    host_net = os.readlink("/proc/self/ns/net")
    assert all(os.readlink(f"/proc/{p.pid}/ns/net") != host_net for p in [*relay, *command])


def _accept(listener: socket.socket) -> socket.socket | None:
    try:
        return listener.accept()[0]
    except BlockingIOError:
        return None


def test_the_preview_cannot_see_the_task_store_or_the_repository(lab: Lab) -> None:
    deps = lab.repo({"probe.py": PROBE, "shipway.toml": '[preview]\ncommand = "python3 probe.py"\n'}, "probe")
    task = lab.task(deps)
    status = deploy(deps, task.id, ALICE)
    job = job_of(deps, task.id)

    def visible(path: Path) -> bool:
        code, body = get(f"{status.url}exists?path={path}")
        assert code == 200
        return bool(json.loads(body)["exists"])

    assert visible(job.tree / "probe.py"), "its own snapshot is there (the probe works)"
    assert (deps.settings.state_path / "tasks.db").exists() and (deps.settings.repo / ".git" / "HEAD").exists()
    assert not visible(deps.settings.state_path / "tasks.db")
    assert not visible(deps.settings.repo / ".git" / "HEAD")
    assert not visible(deps.settings.repo / "probe.py"), "the served checkout is hidden; only the snapshot shows"


def test_a_committed_link_out_of_the_repo_is_left_out_of_the_preview_and_the_log_says_so(lab: Lab) -> None:
    deps = lab.static()
    (deps.settings.repo / "passwd.txt").symlink_to("/etc/passwd")
    git(deps.settings.repo, "add", "passwd.txt")
    git(deps.settings.repo, "commit", "-q", "-m", "a link out")
    task = lab.task(deps)
    status = deploy(deps, task.id, ALICE)
    assert status.url is not None and "Static preview" in get(status.url)[1]
    assert get(status.url + "passwd.txt")[0] == 404
    assert not (job_of(deps, task.id).tree / "passwd.txt").is_symlink()
    assert "left out of the snapshot (links out of the tree, special files): passwd.txt" in status.log_tail


# -- 3-5. how a preview ends on its own


def test_a_preview_whose_ttl_runs_out_is_recorded_as_expired_and_taken_down(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPWAY_PREVIEW_TTL_S", "3")
    deps = lab.static()
    task = lab.task(deps)
    status = deploy(deps, task.id, ALICE)
    assert status.state == "ready" and status.url is not None and answers(status.url)
    assert status.expires_at is not None and status.started_at is not None
    assert abs((status.expires_at - status.started_at).total_seconds() - 3) < 0.5
    job = job_of(deps, task.id)
    assert job.ttl_s == 3 and sandbox_of(job)

    expired = wait_state(deps, task.id, "expired", timeout_s=30)

    assert expired.reason == "its time to live ran out (3 s)" and expired.url is None
    events = deps.tasks.store.events(task.id)
    started = next(e for e in events if e.action == "preview_started")
    ending = newest_preview_event(deps, task.id)
    assert (ending.action, ending.actor) == ("preview_expired", SYSTEM)
    assert (ending.at - started.at).total_seconds() >= 3, "not before its time"
    assert live_preview_url(events) is None
    assert not answers(status.url)
    assert sandbox_of(job) == []
    assert host_of(deps, task.id)["phase"] == "ended"


def test_a_killed_preview_process_is_recorded_as_failed_by_signal_9(lab: Lab) -> None:
    deps = lab.app()
    task = lab.task(deps)
    status = deploy(deps, task.id, ALICE)
    assert status.url is not None
    job = job_of(deps, task.id)
    relay = [p for p in sandbox_of(job) if p.uid == job.uid and p.argv[1:2] == [RELAY_IN_SANDBOX]]
    assert len(relay) == 1
    server = [p for p in processes() if p.ppid == relay[0].pid]
    assert len(server) == 1 and "uvicorn" in server[0].argv and server[0].uid == job.uid

    os.kill(server[0].pid, signal.SIGKILL)
    failed = wait_state(deps, task.id, "failed", timeout_s=30)

    assert failed.reason is not None and "killed by signal 9" in failed.reason
    ending = newest_preview_event(deps, task.id)
    assert (ending.action, ending.actor) == ("preview_failed", SYSTEM)
    assert "Uvicorn running" in ending.payload["log_tail"]
    assert not answers(status.url)
    assert sandbox_of(job) == []


def test_a_killed_supervisor_is_noticed_by_preview_status_which_fails_it_and_cleans_up(lab: Lab) -> None:
    deps = lab.static()
    task = lab.task(deps)
    status = deploy(deps, task.id, ALICE)
    assert status.url is not None
    job = job_of(deps, task.id)
    pid = host_of(deps, task.id)["pid"]
    assert isinstance(pid, int) and supervisor_alive(pid, task.id) and sandbox_of(job)

    os.kill(pid, signal.SIGKILL)
    failed = wait_state(deps, task.id, "failed", timeout_s=30)

    assert failed.reason is not None and f"its supervisor process (pid {pid}) ended" in failed.reason
    ending = newest_preview_event(deps, task.id)
    assert (ending.action, ending.actor) == ("preview_failed", SYSTEM)
    wait_for(lambda: sandbox_of(job) == [], 10, "no sandbox process of the preview is left")
    assert not answers(status.url)
    assert deps.previews.status(task.id).state == "failed", "reconciled once, recorded once"
    assert [a for a, _ in lifecycle(deps, task.id)].count("preview_failed") == 1


# -- 6. the task ends


def test_aborting_the_task_stops_its_preview(lab: Lab) -> None:
    deps = lab.static()
    task = lab.task(deps)
    status = deploy(deps, task.id, ALICE)
    assert status.url is not None
    job = job_of(deps, task.id)
    pid = host_of(deps, task.id)["pid"]

    deps.tasks.abort(task.id, "not needed after all", ALICE)

    ending = newest_preview_event(deps, task.id)
    assert (ending.action, ending.actor, ending.payload["reason"]) == ("preview_stopped", SYSTEM, "the task is aborted")
    after = deps.previews.status(task.id)
    assert (after.state, after.url, after.reason) == ("stopped", None, "the task is aborted")
    assert not answers(status.url)
    assert not supervisor_alive(pid, task.id) and sandbox_of(job) == []


# -- 7. stop, deploy again, new commits


def test_stopping_a_preview_takes_it_down_and_stopping_again_records_nothing(lab: Lab) -> None:
    deps = lab.static()
    task = lab.task(deps)
    status = deploy(deps, task.id, ALICE)
    assert status.url is not None
    job = job_of(deps, task.id)

    stopped = deps.previews.stop(task.id, ALICE)

    assert (stopped.state, stopped.url, stopped.reason) == ("stopped", None, "stopped on request")
    assert deps.previews.status(task.id).state == "stopped"
    assert lifecycle(deps, task.id) == [
        ("preview_started", "human:alice"), ("preview_ready", SYSTEM), ("preview_stopped", "human:alice"),
    ]  # fmt: skip
    assert not answers(status.url)
    assert sandbox_of(job) == [] and host_of(deps, task.id)["how"] == "stopped"
    assert "Serving HTTP" in deps.previews.log_text(task.id), "the log is kept after the preview ends"

    again = deps.previews.stop(task.id, ALICE)
    assert again.state == "stopped" and again.url is None
    assert len(lifecycle(deps, task.id)) == 3


def test_stopping_a_task_that_never_had_a_preview_says_no_preview_is_running(lab: Lab) -> None:
    deps = lab.static()
    task = lab.task(deps)
    stopped = deps.previews.stop(task.id, ALICE)
    assert (stopped.state, stopped.reason) == ("none", "no preview is running")
    assert lifecycle(deps, task.id) == []


def test_deploying_the_same_head_twice_returns_the_running_preview(lab: Lab) -> None:
    deps = lab.static()
    task = lab.task(deps)
    first = deploy(deps, task.id, ALICE)
    pid = host_of(deps, task.id)["pid"]
    second = deps.previews.deploy(task.id, "local", CODER)
    assert (second.state, second.url, second.commit) == ("ready", first.url, first.commit)
    assert host_of(deps, task.id)["pid"] == pid
    assert lifecycle(deps, task.id) == [("preview_started", "human:alice"), ("preview_ready", SYSTEM)]


def test_a_new_commit_makes_the_preview_stale_and_deploying_again_replaces_it(lab: Lab) -> None:
    deps = lab.static()
    task = lab.task(deps)
    first = deploy(deps, task.id, ALICE)
    assert first.url is not None
    old_job = job_of(deps, task.id)
    old_pid = host_of(deps, task.id)["pid"]

    edit = deps.workspaces.edit(
        task.id, CODER, blocks=[EditBlock(path="index.html", content="<h1>Second commit</h1>\n")]
    )
    assert edit.status == "applied" and edit.commit is not None
    moved = deps.previews.status(task.id)
    assert (moved.state, moved.commit, moved.stale, moved.url) == ("ready", first.commit, True, first.url)
    assert "first commit" in get(first.url)[1], "the running preview still shows the commit it was made of"

    second = deploy(deps, task.id, CODER)

    assert (second.state, second.commit, second.stale) == ("ready", edit.commit, False)
    assert second.url is not None and "Second commit" in get(second.url)[1]
    assert lifecycle(deps, task.id) == [
        ("preview_started", "human:alice"), ("preview_ready", SYSTEM), ("preview_stopped", "agent:coder"),
        ("preview_started", "agent:coder"), ("preview_ready", SYSTEM),
    ]  # fmt: skip
    replaced = next(e for e in deps.tasks.store.events(task.id) if e.action == "preview_stopped")
    assert replaced.payload["reason"] == "replaced by a new preview"
    assert not supervisor_alive(old_pid, task.id) and sandbox_of(old_job) == []
    if second.url != first.url:  # a freed port may, rarely, be handed out again
        assert not answers(first.url)


# -- 8. bad input and broken previews


def test_an_unknown_target_is_refused_and_nothing_is_recorded(lab: Lab) -> None:
    deps = lab.static()
    task = lab.task(deps)
    with pytest.raises(UserInputError, match=r"unknown preview target 'ftp'; use one of: local, s3"):
        deps.previews.deploy(task.id, "ftp", ALICE)
    assert [e.action for e in deps.tasks.store.events(task.id)] == ["created"]
    assert not preview_dir(deps.settings, task.id).exists()


def test_a_finished_task_cannot_be_previewed_and_nothing_is_recorded(lab: Lab) -> None:
    deps = lab.static()
    task = lab.task(deps)
    deps.tasks.abort(task.id, "changed my mind", ALICE)
    with pytest.raises(UserInputError, match=r"already ended \(aborted\)"):
        deps.previews.deploy(task.id, "local", ALICE)
    assert [e.action for e in deps.tasks.store.events(task.id)] == ["created", "aborted"]
    assert not preview_dir(deps.settings, task.id).exists()
    assert deps.previews.status(task.id).state == "none"


def test_a_repo_with_nothing_to_preview_fails_saying_what_to_add_to_shipway_toml(lab: Lab) -> None:
    deps = lab.repo({"notes.txt": "no web app here\n"})
    task = lab.task(deps)
    with pytest.raises(UserInputError) as caught:
        deps.previews.deploy(task.id, "local", ALICE)
    message = str(caught.value)
    assert "nothing to preview was found" in message
    assert "[preview]" in message and 'command = "..."' in message and "shipway.toml" in message
    assert "127.0.0.1:$PORT" in message
    assert "crashed" not in message, "a problem with the repo, not with Shipway"
    assert "Traceback" not in (preview_dir(deps.settings, task.id) / "host.log").read_text()
    assert lifecycle(deps, task.id) == [("preview_started", "human:alice"), ("preview_failed", SYSTEM)]
    assert deps.previews.status(task.id).state == "failed"


def test_an_invalid_preview_table_fails_the_deploy_naming_the_key_not_as_a_crash(lab: Lab) -> None:
    deps = lab.repo({"index.html": STATIC_PAGE, "shipway.toml": '[preview]\ncomand = "python3 -m http.server"\n'})
    task = lab.task(deps)
    with pytest.raises(UserInputError) as caught:
        deps.previews.deploy(task.id, "local", ALICE)
    message = str(caught.value)
    assert "shipway.toml [preview]: comand: Extra inputs are not permitted" in message
    assert "crashed" not in message
    assert "Traceback" not in (preview_dir(deps.settings, task.id) / "host.log").read_text()
    assert lifecycle(deps, task.id)[-1] == ("preview_failed", SYSTEM)


def test_a_failing_build_fails_the_preview_with_the_command_and_its_output(lab: Lab) -> None:
    build = "echo compiling the site; echo the compiler broke >&2; exit 3"
    deps = lab.repo({"index.html": STATIC_PAGE, "shipway.toml": f'[preview]\nbuild = "{build}"\n'})
    task = lab.task(deps)
    with pytest.raises(UserInputError) as caught:
        deps.previews.deploy(task.id, "local", ALICE)
    message = str(caught.value)
    assert f"the preview's build `{build}` failed (exit 3)" in message
    assert "the compiler broke" in message, "the log's tail comes with the error"
    status = deps.previews.status(task.id)
    assert status.state == "failed" and "compiling the site" in status.log_tail
    assert "the compiler broke" in newest_preview_event(deps, task.id).payload["log_tail"]
    assert sandbox_of(job_of(deps, task.id)) == []


def test_a_server_that_exits_at_once_fails_the_preview_with_its_exit_status(lab: Lab) -> None:
    deps = lab.repo({"shipway.toml": '[preview]\ncommand = "echo the server gave up; exit 7"\n'})
    task = lab.task(deps)
    with pytest.raises(UserInputError) as caught:
        deps.previews.deploy(task.id, "local", ALICE)
    message = str(caught.value)
    assert "the preview stopped before it answered" in message and "(exit 7)" in message
    assert "the server gave up" in message
    assert deps.previews.status(task.id).state == "failed"


def test_a_server_that_never_listens_fails_after_the_ready_timeout_naming_port_and_leaves_nothing(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPWAY_PREVIEW_READY_TIMEOUT_S", "2")
    deps = lab.repo({"shipway.toml": '[preview]\ncommand = "echo up but deaf; exec sleep 600"\nport = 8765\n'})
    task = lab.task(deps)
    began = time.monotonic()
    with pytest.raises(UserInputError) as caught:
        deps.previews.deploy(task.id, "local", ALICE)
    assert time.monotonic() - began >= 2
    message = str(caught.value)
    assert "did not answer GET / within 2 s" in message
    assert "127.0.0.1:$PORT (8765)" in message and "up but deaf" in message
    job = job_of(deps, task.id)
    assert sandbox_of(job) == []
    assert [p for p in processes() if p.uid == job.uid and "sleep" in p.argv] == []
    assert lifecycle(deps, task.id)[-1] == ("preview_failed", SYSTEM)


# -- races and the sandbox boundary (bugs)


def test_deploy_returns_the_url_even_when_recording_preview_ready_waits_for_the_store(lab: Lab) -> None:
    deps = lab.static()
    task = lab.task(deps)
    directory = preview_dir(deps.settings, task.id)
    result: dict[str, Any] = {}

    def deploy() -> None:
        try:
            result["status"] = deps.previews.deploy(task.id, "local", ALICE)
        except Exception as exc:
            result["error"] = exc

    thread = threading.Thread(target=deploy)
    thread.start()
    try:
        wait_for(lambda: lifecycle(deps, task.id) == [("preview_started", "human:alice")], 30, "preview_started")
        job = job_of(deps, task.id)
        busy = sqlite3.connect(deps.settings.state_path / "tasks.db", isolation_level=None, timeout=30)
        try:
            busy.execute("BEGIN IMMEDIATE")  # another Shipway process writing to the task store, for a moment
            if lifecycle(deps, task.id) != [("preview_started", "human:alice")]:
                raise RuntimeError("the preview was ready before the store was held; the race was missed")
            wait_for(lambda: relay_answers(job), 30, "the preview answers inside the sandbox")
            with contextlib.suppress(TimeoutError):  # it says so within ~0.1 s of answering, or not before the event
                wait_for(lambda: read_host(directory).get("phase") == "ready", 1.5, "host.json says ready")
            if read_host(directory).get("phase") == "ready":
                thread.join(timeout=10)  # deploy returns while the store is still busy
        finally:
            busy.execute("ROLLBACK")
            busy.close()
    finally:
        thread.join(timeout=60)
    assert "error" not in result, result
    status = result["status"]
    assert (status.state, status.url) == ("ready", read_host(directory).get("url"))


def test_a_preview_stopped_while_its_supervisor_starts_stays_stopped(lab: Lab) -> None:
    deps = lab.static()
    task = lab.task(deps)
    result: dict[str, Any] = {}

    def deploy() -> None:
        try:
            result["status"] = deps.previews.deploy(task.id, "local", ALICE)
        except UserInputError as exc:
            result["error"] = exc

    thread = threading.Thread(target=deploy)
    thread.start()
    try:
        wait_for(lambda: lifecycle(deps, task.id) == [("preview_started", "human:alice")], 30, "preview_started")
        if host_of(deps, task.id):
            raise RuntimeError("the supervisor wrote host.json before the test could stop it; the race was missed")
        stopped = deps.previews.stop(task.id, ALICE)
    finally:
        thread.join(timeout=60)
    assert stopped.state == "stopped"
    assert deps.previews.status(task.id).state == "stopped"
    assert lifecycle(deps, task.id) == [("preview_started", "human:alice"), ("preview_stopped", "human:alice")]


def test_a_preview_cannot_make_shipway_read_a_host_file_through_its_log(lab: Lab, tmp_path: Path) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("HOST-SECRET-8d1f\n")
    secret.chmod(0o600)
    # The run directory is Shipway's, so the link cannot even be made; whatever the sandbox manages, the log is
    # read without following links.
    command = f"ln -sf {secret} /tmp/shipway-preview-*/preview.log; exec python3 -m http.server $PORT"
    deps = lab.repo({"index.html": STATIC_PAGE, "shipway.toml": f'[preview]\ncommand = "{command}"\n'})
    task = lab.task(deps)
    status = deploy(deps, task.id, CODER)
    assert status.state == "ready"
    assert "HOST-SECRET" not in status.log_tail
    assert "HOST-SECRET" not in deps.previews.status(task.id).log_tail
    deps.previews.stop(task.id, CODER)
    assert "HOST-SECRET" not in deps.previews.log_text(task.id)


def test_a_preview_build_cannot_make_shipway_append_to_a_host_file(lab: Lab, tmp_path: Path) -> None:
    victim = tmp_path / "host-file.txt"
    victim.write_text("owned by root\n")
    victim.chmod(0o600)
    build = f"ln -sf {victim} /tmp/shipway-preview-*/preview.log; echo WRITTEN-BY-THE-BUILD"
    deps = lab.repo({"index.html": STATIC_PAGE, "shipway.toml": f'[preview]\nbuild = "{build}"\n'})
    task = lab.task(deps)
    deps.previews.deploy(task.id, "local", CODER)
    assert victim.read_text() == "owned by root\n"


def test_deploy_keeps_track_of_the_supervisor_it_launched(lab: Lab) -> None:
    deps = lab.static()
    task = lab.task(deps)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        deps.previews.deploy(task.id, "local", ALICE)
        gc.collect()
    pid = host_of(deps, task.id)["pid"]
    assert supervisor_alive(pid, task.id)
    dropped = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert f"subprocess {pid} is still running" not in dropped


# -- 9. detection (pure)


def tree_with(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text, encoding="utf-8")
    return root


def plan_for(tree: Path) -> tuple[list[str], int, str]:
    plan = serve_plan(tree, load_preview_config(tree), PY)
    return plan.argv, plan.port, plan.source


def test_detect_a_configured_command_wins_over_everything_else(tmp_path: Path) -> None:
    tree = tree_with(tmp_path, {
        "shipway.toml": '[preview]\ncommand = "./serve --fast"\nport = 9000\n',
        "package.json": '{"scripts": {"preview": "vite preview"}}', "app.py": "app = object()\n",
        "index.html": "<h1>x</h1>",
    })  # fmt: skip
    assert plan_for(tree) == (["/bin/sh", "-c", "./serve --fast"], 9000, "shipway.toml [preview] command")


def test_detect_package_json_preview_script_comes_before_start_and_before_python(tmp_path: Path) -> None:
    both = tree_with(tmp_path / "both", {"package.json": '{"scripts": {"start": "node s.js", "preview": "vite"}}',
                                         "app.py": "app = object()\n"})  # fmt: skip
    assert plan_for(both) == (["npm", "run", "preview"], 8000, "package.json scripts.preview")
    start = tree_with(tmp_path / "start", {"package.json": '{"scripts": {"start": "node s.js", "preview": ""}}'})
    assert plan_for(start)[0] == ["npm", "run", "start"]
    broken = tree_with(tmp_path / "broken", {"package.json": "{not json", "index.html": "<h1>x</h1>"})
    assert plan_for(broken)[2] == "./index.html (static site)"


@pytest.mark.parametrize(
    ("name", "source", "target", "wsgi"),
    [
        ("app.py", "from starlette.applications import Starlette\napp = Starlette()\n", "app:app", False),
        ("app.py", "async def app(scope, receive, send):\n    ...\n", "app:app", False),
        ("app.py", "app: object = make()\n", "app:app", False),
        ("app.py", "from flask import Flask\napp = Flask(__name__)\n", "app:app", True),
        ("wsgi.py", "from django.core.wsgi import get_wsgi_application\napplication = get_wsgi_application()\n",
         "wsgi:application", True),
        ("main.py", "def application(environ, start_response):\n    ...\n", "main:application", True),
    ],
)  # fmt: skip
def test_detect_python_apps_asgi_by_default_and_wsgi_when_the_file_says_so(
    tmp_path: Path, name: str, source: str, target: str, wsgi: bool
) -> None:
    argv, port, found = plan_for(tree_with(tmp_path, {name: source}))
    assert argv[:4] == [PY, "-m", "uvicorn", target]
    assert argv[4:9] == ["--host", "127.0.0.1", "--port", "8000", "--no-access-log"] and port == 8000
    assert argv[9:] == (["--interface", "wsgi"] if wsgi else [])
    assert found == f"{name[:-3]}.py defines {target.split(':')[1]}"


def test_detect_python_app_files_in_order_and_only_when_they_define_app(tmp_path: Path) -> None:
    tree = tree_with(tmp_path, {"asgi.py": "application = make()\n", "app.py": "app = make()\n"})
    assert plan_for(tree)[0][3] == "asgi:application"
    helper = tree_with(tmp_path / "helper", {"app.py": "def helper():\n    mapp = 1\n", "index.html": "<p>x</p>"})
    assert plan_for(helper)[2] == "./index.html (static site)"


def test_detect_static_sites_in_the_documented_directory_order(tmp_path: Path) -> None:
    order = ["dist", "build", "public", "_site", "site"]
    tree = tree_with(tmp_path, {f"{d}/index.html": d for d in order} | {"index.html": "root", "docs/index.html": "x"})
    for expected in order:
        argv, port, source = plan_for(tree)
        served = str((tree / expected).resolve())
        assert argv == [PY, "-m", "http.server", "8000", "--bind", "127.0.0.1", "--directory", served] and port == 8000
        assert source == f"{expected}/index.html (static site)"
        (tree / expected / "index.html").unlink()
    assert plan_for(tree)[0][-1] == str(tree.resolve()) and plan_for(tree)[2] == "./index.html (static site)"


def test_detect_a_static_directory_linking_outside_the_repo_is_not_served(tmp_path: Path) -> None:
    outside = tree_with(tmp_path / "outside", {"index.html": "not yours"})
    tree = tree_with(tmp_path / "repo", {"public/index.html": "mine"})
    (tree / "dist").symlink_to(outside)
    assert static_dir(tree, PreviewConfig()) == (tree / "public").resolve()


def test_detect_an_output_directory_outside_the_repo_is_refused(tmp_path: Path) -> None:
    tree = tree_with(tmp_path / "repo", {"dist/index.html": "x"})
    with pytest.raises(ToolInputError, match=r"output '\.\./elsewhere' points outside the repository"):
        static_dir(tree, PreviewConfig(output="../elsewhere"))
    (tree / "link").symlink_to(tmp_path)
    with pytest.raises(ToolInputError, match="points outside the repository"):
        static_dir(tree, PreviewConfig(output="link"))
    assert static_dir(tree, PreviewConfig(output="dist")) == (tree / "dist").resolve()
    assert static_dir(tree, PreviewConfig(output="missing")) is None


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[preview]\nport = 80\n", "port"),
        ("[preview]\ncomand = 'serve'\n", "comand"),
        ("[preview]\nhealth_path = 'health'\n", "health_path"),
        ("[preview]\nbuild = 3\n", "build"),
        ("preview = 'serve'\n", "`preview` must be a table"),
        ("[preview\n", "not valid TOML"),
    ],
)
def test_detect_an_invalid_preview_table_is_refused_naming_the_key(text: str, named: str) -> None:
    with pytest.raises(ToolInputError, match="shipway.toml") as caught:
        read_preview_config(text)
    assert named in str(caught.value)


def test_detect_nothing_to_serve_says_what_to_add_to_shipway_toml(tmp_path: Path) -> None:
    tree = tree_with(tmp_path, {"README.md": "# words\n", "docs/index.html": "not a root"})
    with pytest.raises(ToolInputError, match="nothing to preview was found") as caught:
        serve_plan(tree, PreviewConfig(), PY)
    assert "[preview]" in str(caught.value) and "shipway.toml" in str(caught.value)


# -- 10. over MCP and the CLI


@pytest.mark.anyio
async def test_an_agent_deploys_watches_reads_the_log_of_and_stops_a_preview_over_mcp(lab: Lab) -> None:
    deps = lab.static()
    task = lab.task(deps)
    async with Client(create_server(deps)) as client:
        deployed = await client.call_tool("deploy_preview", {"task_id": task.id[:8]})
        assert not deployed.is_error, deployed.content
        status = PreviewStatus.model_validate(deployed.structured_content)
        assert (status.state, status.target, status.commit) == ("ready", "local", task.base_commit)
        assert status.url is not None and "Static preview" in get(status.url)[1]

        watched = PreviewStatus.model_validate((await client.call_tool("preview_status", {"task_id": task.id}))
                                               .structured_content)  # fmt: skip
        assert (watched.state, watched.url) == ("ready", status.url)
        assert status.log_uri == f"shipway://tasks/{task.id}/preview/log"
        log = await client.read_resource(status.log_uri)
        text = log.contents[0].text  # type: ignore[union-attr]
        assert "$ python -m http.server 8000 --directory ." in text

        stopped = PreviewStatus.model_validate((await client.call_tool("stop_preview", {"task_id": task.id}))
                                               .structured_content)  # fmt: skip
        assert (stopped.state, stopped.url) == ("stopped", None)
        refused = await client.call_tool("deploy_preview", {"task_id": task.id, "target": "ftp"})
        assert refused.is_error
    assert not answers(status.url)
    assert lifecycle(deps, task.id) == [
        ("preview_started", "agent:mcp-client"), ("preview_ready", SYSTEM), ("preview_stopped", "agent:mcp-client"),
    ]  # fmt: skip


@pytest.mark.anyio
async def test_deploy_preview_on_an_ended_task_is_a_tool_error_over_mcp(lab: Lab) -> None:
    deps = lab.static()
    task = lab.task(deps)
    deps.tasks.abort(task.id, "done with it", ALICE)
    async with Client(create_server(deps)) as client:
        result = await client.call_tool("deploy_preview", {"task_id": task.id})
    assert result.is_error and "already ended (aborted)" in result.content[0].text  # type: ignore[union-attr]
    assert lifecycle(deps, task.id) == []


def test_the_cli_starts_a_preview_that_outlives_it_reports_it_and_stops_it(lab: Lab) -> None:
    deps = lab.static()
    task = lab.task(deps)
    repo = str(deps.settings.repo)

    started = shipway("preview", "start", task.id, "--repo", repo, "--json")
    assert started.returncode == 0, started.stderr
    data = json.loads(started.stdout)
    assert (data["state"], data["target"], data["commit"]) == ("ready", "local", task.base_commit)
    assert "Static preview" in get(data["url"])[1], "the preview outlives the command that started it"

    shown = shipway("preview", "status", task.id, "--repo", repo, "--json")
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    assert (status["state"], status["url"]) == ("ready", data["url"])

    stopped = shipway("preview", "stop", task.id, "--repo", repo)
    assert stopped.returncode == 0, stopped.stderr
    assert f"preview of task {task.id}: stopped (local)" in stopped.stdout
    assert "reason:  stopped on request" in stopped.stdout
    assert not answers(status["url"])
    actions = lifecycle(deps, task.id)
    assert [a for a, _ in actions] == ["preview_started", "preview_ready", "preview_stopped"]
    assert actions[0][1].startswith("human:") and actions[2][1] == actions[0][1]


def test_the_forwarder_carries_nothing_to_a_socket_that_is_not_the_preview_relay(tmp_path: Path) -> None:
    """The relay's socket directory is the sandbox's: it could put a link to a host socket there (a Docker
    daemon's). The forwarder checks the peer of every connection and carries nothing to anyone else."""
    other = tmp_path / "daemon.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(other))
    server.listen(4)
    server.settimeout(5)
    (tmp_path / "sock").mkdir()
    target = tmp_path / "sock" / "relay.sock"
    target.symlink_to(other)
    forwarder = PortForwarder(target).start()
    try:
        with socket.create_connection(("127.0.0.1", forwarder.port), timeout=5) as client:
            client.sendall(b"GET /containers/json HTTP/1.0\r\n\r\n")
            victim, _ = server.accept()  # the forwarder did connect (that is how it learns who answers) ...
            victim.settimeout(5)
            assert victim.recv(1024) == b"", "... but carried nothing to it"
            victim.close()
            try:
                reply = client.recv(1024)
            except ConnectionResetError:  # closed with the request unread: a reset, which is a refusal too
                reply = b""
            assert reply == b""
    finally:
        forwarder.close()
        server.close()
