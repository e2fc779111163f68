"""Filling the disk: one huge file, or many."""

from __future__ import annotations

from sandbox.base import MiB
from tests.security.conftest import Box, small


def test_a_single_huge_file_stops_at_the_file_size_limit(box: Box) -> None:
    result = box.sh("dd if=/dev/zero of=big bs=1M count=64 2>&1", small(file_size_bytes=8 * MiB))
    assert result.exit_code != 0
    assert (box.worktree.path / "big").stat().st_size <= 8 * MiB


def test_many_files_filling_the_disk_are_stopped_by_the_watchdog(box: Box) -> None:
    script = "i=0; while :; do dd if=/dev/zero of=f$i bs=1M count=4 2>/dev/null; i=$((i+1)); done"
    result = box.sh(script, small(disk_write_bytes=64 * MiB, timeout_s=60))
    written = sum(p.stat().st_size for p in box.worktree.path.glob("f*"))
    assert result.limit_hit is not None and result.limit_hit.startswith("disk")
    assert written < 256 * MiB


def test_the_private_tmp_is_bounded(box: Box) -> None:
    result = box.sh("dd if=/dev/zero of=/tmp/fill bs=1M count=64 2>&1; echo rc=$?", small(tmp_bytes=16 * MiB))
    assert "No space left on device" in result.stdout
