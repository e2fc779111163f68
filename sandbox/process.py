"""Run one process to completion under watch: timeout, output caps, disk watchdog, group kill.

Shared by every backend. The process starts in a new session (its own process group), so a
timeout or a limit kills the whole group at once. Output is read by two threads; each stream
keeps its first and last `output_bytes / 2` bytes and counts the rest, so the summary line a
test runner prints last survives truncation.

rlimits are applied by exec'ing through util-linux `prlimit` rather than a `preexec_fn`:
commands are started from worker threads, where `preexec_fn` is unsafe.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sandbox.base import TIMEOUT_EXIT_CODE, ExecResult, Limits

_CHUNK = 64 * 1024
_POLL_S = 0.02


def prlimit_prefix(limits: Limits, nproc: int | None) -> list[str]:
    """`prlimit ... --` setting the resource limits for everything exec'd after it."""
    args = [
        "prlimit",
        f"--as={limits.address_space_bytes}",
        f"--cpu={limits.cpu_seconds}",
        f"--fsize={limits.file_size_bytes}",
        f"--nofile={limits.open_files}",
        "--core=0",
    ]
    if nproc is not None:
        args.append(f"--nproc={nproc}")
    return [*args, "--"]


@dataclass
class _Stream:
    keep: int
    head: bytearray = field(default_factory=bytearray)
    tail: deque[bytes] = field(default_factory=deque)
    tail_len: int = 0
    total: int = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.keep - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail.append(chunk)
            self.tail_len += len(chunk)
            while self.tail and self.tail_len - len(self.tail[0]) >= self.keep:
                self.tail_len -= len(self.tail.popleft())

    def text(self) -> tuple[str, bool]:
        tail = b"".join(self.tail)[-self.keep :] if self.tail else b""
        omitted = self.total - len(self.head) - len(tail)
        if omitted <= 0:
            return (bytes(self.head) + tail).decode("utf-8", "replace"), False
        marker = f"\n[... shipway: {omitted:,} bytes of output omitted ...]\n".encode()
        return (bytes(self.head) + marker + tail).decode("utf-8", "replace"), True


class _Watch:
    """Everything that may end a run early, checked every few milliseconds."""

    def __init__(self, limits: Limits, disk_path: Path, streams: Sequence[_Stream]) -> None:
        self.limits = limits
        self.disk_path = disk_path
        self.streams = streams
        self.start_free = self._free()

    def _free(self) -> int:
        stats = os.statvfs(self.disk_path)
        return stats.f_bavail * stats.f_frsize

    def exceeded(self) -> str | None:
        if sum(stream.total for stream in self.streams) > self.limits.output_kill_bytes:
            return f"output: more than {self.limits.output_kill_bytes:,} bytes written to stdout/stderr"
        if self.start_free - self._free() > self.limits.disk_write_bytes:
            return f"disk: more than {self.limits.disk_write_bytes:,} bytes written to the workspace filesystem"
        return None


def _pump(pipe: IO[bytes], stream: _Stream) -> None:
    with contextlib.suppress(OSError, ValueError):
        while chunk := pipe.read1(_CHUNK):  # type: ignore[attr-defined]
            stream.add(chunk)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


@dataclass
class _Verdict:
    timed_out: bool = False
    limit_hit: str | None = None


def _watchdog(
    proc: subprocess.Popen[bytes], watch: _Watch, deadline: float, stop: threading.Event, verdict: _Verdict
) -> None:
    while not stop.wait(_POLL_S):
        if time.monotonic() >= deadline:
            verdict.timed_out, verdict.limit_hit = True, f"timeout: still running after {watch.limits.timeout_s:g}s"
        else:
            verdict.limit_hit = watch.exceeded()
        if verdict.limit_hit:
            _kill_group(proc.pid)
            return


def run_watched(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path,
    limits: Limits,
    disk_path: Path,
    sandboxed: bool,
    pass_fds: tuple[int, ...] = (),
) -> ExecResult:
    """Run `argv`, enforce timeout and watchdogs, kill its process group, and report.

    `pass_fds` are inherited by the child and closed here once it has started."""
    keep = max(limits.output_bytes // 2, 1)
    out, err = _Stream(keep), _Stream(keep)
    watch = _Watch(limits, disk_path, (out, err))
    start = time.monotonic()
    proc = subprocess.Popen(
        list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env, cwd=cwd, start_new_session=True, pass_fds=pass_fds,
    )  # fmt: skip
    for fd in pass_fds:
        os.close(fd)
    assert proc.stdout is not None and proc.stderr is not None
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, err), daemon=True),
    ]
    for pump in pumps:
        pump.start()
    verdict = _Verdict()
    stop = threading.Event()
    watchdog = threading.Thread(target=_watchdog, args=(proc, watch, start + limits.timeout_s, stop, verdict))
    watchdog.start()
    # Block on the process itself, so a quick command is noticed the moment it exits; the
    # watchdog thread enforces the timeout and limits meanwhile.
    proc.wait()
    stop.set()
    watchdog.join()
    timed_out, limit_hit = verdict.timed_out, verdict.limit_hit
    # Nothing the command started may outlive it (the sandbox's pid namespace already ensures
    # this; for the unsafe runner this is the only line of defence).
    _kill_group(proc.pid)
    for pump in pumps:
        pump.join(timeout=2)
    for pipe in (proc.stdout, proc.stderr):
        pipe.close()
    stdout, cut_out = out.text()
    stderr, cut_err = err.text()
    return ExecResult(
        exit_code=TIMEOUT_EXIT_CODE if timed_out else _exit_status(proc.returncode),
        stdout=stdout,
        stderr=stderr,
        truncated=cut_out or cut_err,
        timed_out=timed_out,
        duration_ms=int((time.monotonic() - start) * 1000),
        sandboxed=sandboxed,
        limit_hit=limit_hit,
    )
