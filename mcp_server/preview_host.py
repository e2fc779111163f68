"""The supervisor of one preview: `python -m mcp_server.preview_host --repo REPO --task ID`.

Started by PreviewService in a session of its own, so the preview outlives the MCP call, the
CLI command or even the server that asked for it. It reads `<state>/previews/<task>/job.json`,
then: start the target (build, serve or upload), write `host.json` and record `preview_ready`
with the URL; wait until SIGTERM (a stop), the TTL, or the preview dying; take it down; record
`preview_expired` or `preview_failed` (a stop is recorded by whoever asked for it).

`host.json` is how other processes see it: {pid, phase: starting|ready|ended, url, how, reason}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from mcp_server.app import open_task_service
from mcp_server.config import load_settings
from mcp_server.previews import SYSTEM, preview_dir, save_log, target_for
from mcp_server.tasks.service import TaskService
from sandbox.select import choose_sandbox
from tools.errors import ToolInputError
from tools.preview.base import Ending, PreviewFailed, PreviewJob, PreviewTarget, log_tail

log = logging.getLogger("shipway.preview_host")


def write_host(directory: Path, **fields: Any) -> None:
    """Replace host.json atomically (readers never see half a file)."""
    current = {}
    with contextlib.suppress(OSError, ValueError):
        current = json.loads((directory / "host.json").read_text(encoding="utf-8"))
    temporary = directory / "host.json.tmp"
    temporary.write_text(json.dumps({**current, **fields}), encoding="utf-8")
    os.replace(temporary, directory / "host.json")


class StoppedWhileStarting(Exception):
    """SIGTERM arrived before the preview was up: abandon the start."""


def supervise(tasks: TaskService, target: PreviewTarget, job: PreviewJob, directory: Path,
              stop: threading.Event, up: threading.Event) -> Ending:  # fmt: skip
    deadline = time.monotonic() + job.ttl_s
    try:
        try:
            write_host(directory, pid=os.getpid(), phase="starting")
            if stop.is_set():
                raise StoppedWhileStarting
            deployment = target.start(job)
        finally:
            up.set()  # from here on a SIGTERM only sets `stop`, which wait() and the teardown honour
    except StoppedWhileStarting:
        ending = Ending(how="stopped", reason="stopped before it was up")
    except ToolInputError as exc:  # PreviewFailed, or a [preview] table or output the tools refused
        tail = exc.log_tail if isinstance(exc, PreviewFailed) else ""
        ending = Ending(how="failed", reason=str(exc), log_tail=tail or log_tail(job.log_path))
    else:  # recorded before host.json says so: whoever waits for "ready" reads the event next
        tasks.record(job.task_id, SYSTEM, "preview_ready", {"url": deployment.url, "target": job.target,
                                                            "commit": job.commit, **deployment.detail})  # fmt: skip
        write_host(directory, phase="ready", url=deployment.url)
        ending = target.wait(job, stop, deadline)
    try:
        target.stop(job)
    except PreviewFailed as exc:  # say so: something may be left behind (objects, a stack)
        ending = ending.model_copy(update={"reason": f"{ending.reason}; tearing it down failed: {exc}"})
    return ending


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shipway-preview-host")
    parser.add_argument("--repo", required=True)
    parser.add_argument("--task", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level="INFO", format="%(asctime)s %(levelname)s %(message)s")
    settings = load_settings(repo=args.repo)
    directory = preview_dir(settings, args.task)
    job = PreviewJob.model_validate_json((directory / "job.json").read_text(encoding="utf-8"))
    tasks = open_task_service(settings)
    stop, up = threading.Event(), threading.Event()

    def on_term(*_: object) -> None:
        stop.set()
        if not up.is_set():  # still building or waiting for the health check: interrupt that
            raise StoppedWhileStarting

    signal.signal(signal.SIGTERM, on_term)
    try:
        target = target_for(job, choose_sandbox(settings.unsafe_no_sandbox))
        ending = supervise(tasks, target, job, directory, stop, up)
    except PreviewFailed as exc:  # the target could not even be set up (no bucket configured...)
        ending = Ending(how="failed", reason=str(exc))
    except Exception as exc:  # recorded, so the task never shows a preview that is not there
        log.exception("preview of task %s crashed", job.task_id)
        ending = Ending(how="failed", reason=f"the preview's supervisor crashed: {type(exc).__name__}: {exc}")
    save_log(job, directory)
    log.info("preview of task %s ended: %s (%s)", job.task_id, ending.how, ending.reason)
    if ending.how != "stopped":  # recorded before host.json says so: whoever waits reads the event next
        tasks.record(job.task_id, SYSTEM, f"preview_{ending.how}", {"reason": ending.reason[:2_000],
                                                                     "log_tail": ending.log_tail[-1_500:]})  # fmt: skip
    write_host(directory, phase="ended", how=ending.how, reason=ending.reason)
    return 0 if ending.how != "failed" else 1


if __name__ == "__main__":
    sys.exit(main())
