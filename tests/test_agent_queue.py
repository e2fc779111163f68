"""The agent work queue (SqliteAgentQueue): leases, wake-ups remembered while a worker runs, takeovers.

Two queue objects on one file stand for two worker processes; time passes for real (leases of a
few hundredths of a second) or a lease is ended with `expire`.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from mcp_server.agent_queue import Lease, SqliteAgentQueue

LONG = 60.0
SHORT = 0.05


@pytest.fixture
def queue(tmp_path: Path) -> SqliteAgentQueue:
    return SqliteAgentQueue(tmp_path / "agent-queue.db")


def wanted(path: Path, task_id: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT wanted FROM agent_jobs WHERE task_id = ?", (task_id,)).fetchone()[0])
    finally:
        conn.close()


def test_a_put_task_is_queued_unheld_and_a_claim_takes_it_with_a_live_lease(queue: SqliteAgentQueue) -> None:
    assert queue.lease("t1") is None
    assert queue.put("t1") is True
    assert queue.lease("t1") == Lease(task_id="t1", worker=None, lease_until=None)
    assert not queue.lease("t1").live()  # type: ignore[union-attr]

    before = time.time()
    assert queue.claim("w1", LONG) == "t1"
    lease = queue.lease("t1")
    assert lease is not None and lease.worker == "w1" and lease.live()
    assert before + LONG <= (lease.lease_until or 0) <= time.time() + LONG
    assert queue.claim("w2", LONG) is None  # nothing else is queued


def test_claim_of_a_named_task_takes_only_that_one(queue: SqliteAgentQueue) -> None:
    for task_id in ("t1", "t2", "t3"):
        queue.put(task_id)
    assert queue.claim("w1", LONG, "t2") == "t2"
    assert queue.claim("w2", LONG, "t2") is None  # held
    assert queue.claim("w2", LONG, "nope") is None  # never queued
    assert queue.lease("t1").worker is None and queue.lease("t3").worker is None  # type: ignore[union-attr]
    assert queue.claim("w2", LONG) == "t1"


def test_a_live_lease_blocks_other_workers_and_a_put_only_marks_the_task_wanted(
    queue: SqliteAgentQueue, tmp_path: Path
) -> None:
    queue.put("t1")
    assert queue.claim("w1", LONG) == "t1"
    assert wanted(tmp_path / "agent-queue.db", "t1") == 0
    until = queue.lease("t1").lease_until  # type: ignore[union-attr]

    assert queue.claim("w2", LONG) is None
    assert queue.claim("w2", LONG, "t1") is None
    assert queue.put("t1") is False  # no new worker is needed: the holder goes round again
    assert wanted(tmp_path / "agent-queue.db", "t1") == 1
    assert queue.lease("t1") == Lease(task_id="t1", worker="w1", lease_until=until)  # the lease is untouched
    assert queue.claim("w2", LONG) is None


def test_release_after_a_wanted_put_keeps_the_task_queued_for_anyone(queue: SqliteAgentQueue) -> None:
    queue.put("t1")
    queue.claim("w1", LONG)
    queue.put("t1")
    assert queue.release("t1", "w1") is True
    assert queue.lease("t1") == Lease(task_id="t1", worker=None, lease_until=None)
    assert queue.claim("w2", LONG) == "t1"  # the wake-up was not lost
    # A claim clears the wanted mark: the next release without a wake-up lets go for good.
    assert queue.release("t1", "w2") is False
    assert queue.lease("t1") is None


def test_release_without_a_wake_up_removes_the_task(queue: SqliteAgentQueue) -> None:
    queue.put("t1")
    queue.claim("w1", LONG)
    assert queue.release("t1", "w1") is False
    assert queue.lease("t1") is None


def test_only_the_holder_can_release(queue: SqliteAgentQueue) -> None:
    queue.put("t1")
    queue.claim("w1", LONG)
    queue.put("t1")
    assert queue.release("t1", "w2") is False
    assert queue.release("t1", "w2") is False
    assert queue.lease("t1").worker == "w1"  # type: ignore[union-attr]
    assert queue.release("t1", "w1") is True  # the wanted mark survived the stranger's attempts
    assert queue.release("never-queued", "w1") is False


def test_an_expired_lease_can_be_claimed_by_another_worker(queue: SqliteAgentQueue) -> None:
    queue.put("t1")
    assert queue.claim("w1", SHORT) == "t1"
    assert queue.claim("w2", LONG) is None
    time.sleep(SHORT * 2)
    assert not queue.lease("t1").live()  # type: ignore[union-attr]
    assert queue.claim("w2", LONG) == "t1"
    assert queue.lease("t1").worker == "w2"  # type: ignore[union-attr]
    # The worker whose lease ran out holds nothing any more.
    assert queue.renew("t1", "w1", LONG) is False
    assert queue.release("t1", "w1") is False
    assert queue.lease("t1").worker == "w2" and queue.lease("t1").live()  # type: ignore[union-attr]


def test_expire_ends_a_live_lease_at_once(queue: SqliteAgentQueue) -> None:
    queue.put("t1")
    queue.claim("w1", LONG)
    queue.expire("t1")
    lease = queue.lease("t1")
    assert lease is not None and lease.worker == "w1" and not lease.live()
    assert queue.claim("w2", LONG, "t1") == "t1"
    queue.expire("never-queued")  # nothing to end, nothing created
    assert queue.lease("never-queued") is None


def test_a_put_on_an_expired_lease_queues_the_task_again(queue: SqliteAgentQueue) -> None:
    queue.put("t1")
    queue.claim("w1", LONG)
    queue.expire("t1")
    assert queue.put("t1") is True
    assert queue.lease("t1") == Lease(task_id="t1", worker=None, lease_until=None)
    assert queue.release("t1", "w1") is False  # the dead worker no longer holds it
    assert queue.claim("w2", LONG) == "t1"


def test_only_the_holder_can_renew_and_renewing_extends_the_lease(queue: SqliteAgentQueue) -> None:
    queue.put("t1")
    queue.claim("w1", 10.0)
    first = queue.lease("t1").lease_until  # type: ignore[union-attr]
    assert queue.renew("t1", "w2", 1_000.0) is False
    assert queue.lease("t1").lease_until == first  # type: ignore[union-attr]
    assert queue.renew("t1", "w1", 1_000.0) is True
    renewed = queue.lease("t1").lease_until  # type: ignore[union-attr]
    assert renewed is not None and first is not None and renewed > first + 900
    assert queue.renew("never-queued", "w1", LONG) is False


def test_a_renewed_lease_outlives_its_first_term(queue: SqliteAgentQueue) -> None:
    queue.put("t1")
    queue.claim("w1", SHORT)
    assert queue.renew("t1", "w1", LONG) is True
    time.sleep(SHORT * 2)
    assert queue.lease("t1").live()  # type: ignore[union-attr]
    assert queue.claim("w2", LONG) is None


def test_two_queue_objects_on_one_file_share_the_queue(tmp_path: Path) -> None:
    """Two processes: what one puts, claims or releases, the other sees at once."""
    path = tmp_path / "agent-queue.db"
    first, second = SqliteAgentQueue(path), SqliteAgentQueue(path)  # the schema is created once, then reused
    assert first.put("t1") is True
    assert second.claim("w2", LONG) == "t1"
    assert first.claim("w1", LONG) is None
    assert first.put("t1") is False  # held by the other process's worker: it goes round again
    assert second.release("t1", "w2") is True
    assert first.claim("w1", LONG) == "t1"
    assert second.lease("t1").worker == "w1"  # type: ignore[union-attr]
    first.release("t1", "w1")
    assert second.lease("t1") is None
    # A third opening of the file, as after a restart, finds what was left.
    first.put("t2")
    assert SqliteAgentQueue(path).lease("t2") == Lease(task_id="t2", worker=None, lease_until=None)


def test_claims_take_the_oldest_task_first(queue: SqliteAgentQueue) -> None:
    for task_id in ("t3", "t1", "t2"):
        queue.put(task_id)
        time.sleep(0.005)
    assert queue.put("t3") is True  # queued again: it keeps its place
    assert [queue.claim("w", LONG) for _ in range(4)] == ["t3", "t1", "t2", None]


def test_a_task_whose_lease_expired_keeps_its_place_in_the_queue(queue: SqliteAgentQueue) -> None:
    queue.put("old")
    time.sleep(0.005)
    queue.put("new")
    assert queue.claim("w1", SHORT) == "old"
    time.sleep(SHORT * 2)
    assert queue.claim("w2", LONG) == "old"
    assert queue.claim("w2", LONG) == "new"
