"""Escape attempts against host processes and privileges, and resource exhaustion."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from sandbox.base import TIMEOUT_EXIT_CODE, MiB
from tests.security.conftest import Box, sandbox_processes, small


def test_host_processes_cannot_be_signalled(box: Box) -> None:
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        result = box.sh(f"kill -9 {victim.pid} 2>&1; kill -9 -1 2>&1; echo end")
        time.sleep(0.2)
        assert victim.poll() is None, "a host process was killed from inside the sandbox"
        assert "end" in result.stdout
    finally:
        victim.kill()
        victim.wait()


def test_host_processes_cannot_be_traced(box: Box) -> None:
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        result = box.py(
            "import ctypes, ctypes.util\nlibc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)\n"
            f"rc = libc.ptrace(16, {victim.pid}, None, None)\nprint('rc', rc, 'errno', ctypes.get_errno())"
        )
        assert "rc -1" in result.stdout
    finally:
        victim.kill()
        victim.wait()


def test_privileges_cannot_be_regained(box: Box) -> None:
    result = box.py(
        "import os\nprint('uid', os.getuid(), os.geteuid())\n"
        "try:\n os.setuid(0); print('ROOT')\nexcept PermissionError: print('setuid refused')\n"
        "print(open('/proc/self/status').read())"
    )
    assert "setuid refused" in result.stdout and "ROOT" not in result.stdout
    status = result.stdout
    assert "NoNewPrivs:\t1" in status and "CapEff:\t0000000000000000" in status
    if os.geteuid() == 0:
        assert "uid 0" not in status


def test_mounting_and_setuid_helpers_are_refused(box: Box) -> None:
    result = box.sh("mount -t tmpfs none /mnt 2>&1; echo mount=$?; su -c id root </dev/null 2>&1; echo su=$?")
    assert "mount=0" not in result.stdout and "su=0" not in result.stdout


def test_a_fork_bomb_is_contained_by_the_process_limit(box: Box) -> None:
    # A bounded bomb (it stops by itself at 400) so that a broken limit cannot hurt the machine.
    result = box.py(
        "import os, time\nborn = 0\ntry:\n for _ in range(400):\n  if os.fork() == 0:\n   time.sleep(30); os._exit(0)\n"
        "  born += 1\nexcept OSError as e:\n print('stopped', born, e.errno)\nelse:\n print('unbounded', born)",
        small(processes=64, timeout_s=20),
    )
    assert result.stdout.startswith("stopped"), result.stdout
    assert int(result.stdout.split()[1]) < 64
    assert sandbox_processes() == []


def test_a_memory_bomb_is_stopped_by_the_address_space_limit(box: Box) -> None:
    result = box.py("blocks = []\nwhile True: blocks.append(bytearray(64 << 20))", small(address_space_bytes=512 * MiB))
    assert result.exit_code != 0 and "MemoryError" in result.stderr


def test_an_endless_loop_is_killed_at_the_timeout(box: Box) -> None:
    result = box.sh("while :; do :; done", small(timeout_s=1))
    assert result.timed_out and result.exit_code == TIMEOUT_EXIT_CODE and result.duration_ms < 5_000


def test_cpu_time_is_limited_even_within_the_timeout(box: Box) -> None:
    result = box.py("while True: pass", small(cpu_seconds=1, timeout_s=20))
    assert not result.timed_out and result.exit_code in (128 + 9, 128 + 24) and result.duration_ms < 10_000


def test_endless_output_is_cut_and_the_command_stopped(box: Box) -> None:
    result = box.sh("yes shipway", small(output_bytes=4096, output_kill_bytes=8 * MiB, timeout_s=20))
    assert result.limit_hit is not None and result.limit_hit.startswith("output")
    assert result.truncated and len(result.stdout) < 5000 and "bytes of output omitted" in result.stdout


def test_a_daemon_does_not_outlive_its_command(box: Box) -> None:
    result = box.sh("setsid sh -c 'sleep 300' >/dev/null 2>&1 & nohup sleep 301 >/dev/null 2>&1 & echo started")
    assert result.stdout == "started\n"
    assert sandbox_processes() == []


def test_open_files_are_limited(box: Box) -> None:
    result = box.py(
        "files = []\ntry:\n while True: files.append(open('/dev/null'))\n"
        "except OSError as e: print('stopped at', len(files), e.errno)",
        small(open_files=64),
    )
    assert "stopped at" in result.stdout and int(result.stdout.split()[2]) < 64
