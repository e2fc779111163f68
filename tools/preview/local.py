"""`LocalPreview`: the preview command in the sandbox, reached through one forwarded loopback port.

The command runs under the `loopback` network policy: a network namespace of its own, with
nothing outside reachable (not even the host's 127.0.0.1). The relay (relay.py) inside and
the forwarder (forward.py) outside join a host port to the command's port through a Unix
socket. The sandbox's time limit is the preview's TTL, so an expired preview is killed by the
same watchdog as any other sandboxed command.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import threading
import time
from pathlib import Path

from sandbox.base import ExecResult, Limits, NetworkPolicy, Sandbox
from tools.preview.base import Deployment, Ending, PreviewFailed, PreviewJob, TargetName, log_tail
from tools.preview.build import note, run_build
from tools.preview.detect import load_preview_config, serve_plan
from tools.preview.forward import PortForwarder

POLL_S = 0.1


def answers(port: int, path: str) -> bool:
    """The preview answered `GET path` on 127.0.0.1:port with a status below 500."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path, headers={"User-Agent": "shipway-preview-health"})
        return connection.getresponse().status < 500
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def kill_sandbox(socket_path: Path) -> int:
    """SIGKILL every process whose command line names this preview's socket: the relay and the
    bubblewrap processes around it (killing the namespace's init ends everything inside).
    Works from any process on the host, so an orphaned preview can be cleaned up too."""
    needle = str(socket_path).encode()
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
        except (OSError, ValueError):
            continue
    return killed


class LocalPreview:
    name: TargetName = "local"

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._thread: threading.Thread | None = None
        self._result: ExecResult | None = None
        self._forwarder: PortForwarder | None = None

    def start(self, job: PreviewJob) -> Deployment:
        config = load_preview_config(job.tree)
        run_build(self.sandbox, job, config)
        plan = serve_plan(job.tree, config, job.python)
        note(job, f"$ {plan.shown}    # {plan.source}; listening on 127.0.0.1:{plan.port} inside the sandbox")
        argv = [job.python, str(job.relay), str(job.socket_path), str(plan.port), str(job.log_path), "--", *plan.argv]
        limits = Limits(timeout_s=job.ttl_s, cpu_seconds=max(int(job.ttl_s), 60), output_bytes=64 * 1024)
        self._forwarder = PortForwarder(job.socket_path).start()
        self._thread = threading.Thread(target=self._serve, args=(argv, job, limits), name="preview", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + job.ready_timeout_s
        while time.monotonic() < deadline:
            if not self._thread.is_alive():
                ending = self._ending(job)
                raise PreviewFailed(f"the preview stopped before it answered: {ending.reason}", ending.log_tail)
            if answers(self._forwarder.port, config.health_path):
                url = f"http://127.0.0.1:{self._forwarder.port}/"
                return Deployment(url=url, detail={"port": self._forwarder.port, "command": plan.shown,
                                                   "source": plan.source})  # fmt: skip
            time.sleep(POLL_S)
        self.stop(job)
        raise PreviewFailed(
            f"the preview did not answer GET {config.health_path} within {job.ready_timeout_s:g} s; it must listen on "
            f"127.0.0.1:$PORT ({plan.port}) inside the sandbox (`{plan.shown}`, from {plan.source})",
            log_tail(job.log_path),
        )

    def _serve(self, argv: list[str], job: PreviewJob, limits: Limits) -> None:
        self._result = self.sandbox.run(argv, job.workspace(), limits, NetworkPolicy.LOOPBACK)

    def _ending(self, job: PreviewJob) -> Ending:
        result = self._result
        if result is None:
            return Ending(how="failed", reason="the sandbox did not report how the preview ended")
        if result.timed_out:
            return Ending(how="expired", reason=f"its time to live ran out ({job.ttl_s:g} s)")
        why = result.limit_hit or (
            f"killed by signal {result.exit_code - 128}" if result.exit_code > 128 else f"exit {result.exit_code}"
        )
        detail = (result.stderr or result.stdout).strip()[-500:]
        reason = f"the preview process ended ({why})" + (f": {detail}" if detail else "")
        return Ending(how="failed", reason=reason, log_tail=log_tail(job.log_path))

    def wait(self, job: PreviewJob, stop: threading.Event, deadline: float) -> Ending:
        assert self._thread is not None, "start() first"
        while True:
            if stop.is_set():
                return Ending(how="stopped", reason="stop requested")
            self._thread.join(timeout=POLL_S)
            if not self._thread.is_alive():
                return self._ending(job)
            if time.monotonic() >= deadline + 5:  # the sandbox's own timeout should have ended it
                return Ending(how="expired", reason=f"its time to live ran out ({job.ttl_s:g} s)")

    def stop(self, job: PreviewJob) -> None:
        kill_sandbox(job.socket_path)
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._forwarder is not None:
            self._forwarder.close()
        with contextlib.suppress(FileNotFoundError):
            job.socket_path.unlink()
