"""The agent work queue on AWS (SqsAgentQueue): SQS wake-ups, DynamoDB leases, a dead-letter queue (a real moto server).

Two queue objects on one prefix stand for two worker machines. Time passes for real: leases of
one or two seconds (SQS visibility timeouts are whole seconds), and a claim that finds nothing
long-polls for one second, so every wait here is bounded by those.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from mcp_server.errors import StoreError
from mcp_server.sqs_queue import SqsAgentQueue

LONG = 60.0


@pytest.fixture
def queue(aws: str) -> SqsAgentQueue:
    made = SqsAgentQueue("t", endpoint_url=aws, max_receives=2)
    made.create()
    return made


@pytest.fixture
def other(aws: str, queue: SqsAgentQueue) -> SqsAgentQueue:
    """A second worker machine on the same queue."""
    return SqsAgentQueue("t", endpoint_url=aws, max_receives=2)


def sqs(aws: str) -> Any:
    return boto3.client("sqs", endpoint_url=aws)


def counts(aws: str, queue_name: str = "t-agent-queue") -> tuple[int, int]:
    """(visible, in flight) messages of a queue, as SQS counts them."""
    client = sqs(aws)
    url = client.get_queue_url(QueueName=queue_name)["QueueUrl"]
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    found = client.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return int(found[names[0]]), int(found[names[1]])


def item(aws: str, task_id: str) -> dict[str, Any] | None:
    found = boto3.client("dynamodb", endpoint_url=aws).get_item(
        TableName="t-leases", Key={"task_id": {"S": task_id}}, ConsistentRead=True
    )
    return found.get("Item")


def wanted(aws: str, task_id: str) -> bool:
    found = item(aws, task_id)
    assert found is not None
    return bool(found["wanted"]["BOOL"])


def closed_port_url() -> str:
    """An endpoint nothing listens on: a loopback port just freed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def wait_until(check: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not so within {within} s"
        time.sleep(0.1)


# -- setup


def test_create_makes_the_lease_table_and_both_queues_once_and_redrives_to_the_dead_letter_queue(aws: str) -> None:
    queue = SqsAgentQueue("t", endpoint_url=aws, max_receives=2)
    assert queue.create() == ["t-leases", "t-agent-queue-dead", "t-agent-queue"]
    assert queue.create() == []
    assert SqsAgentQueue("t", endpoint_url=aws, max_receives=2).create() == []  # another machine: nothing new

    assert boto3.client("dynamodb", endpoint_url=aws).list_tables()["TableNames"] == ["t-leases"]
    client = sqs(aws)
    urls = client.list_queues()["QueueUrls"]
    assert sorted(url.rsplit("/", 1)[1] for url in urls) == ["t-agent-queue", "t-agent-queue-dead"]
    main = client.get_queue_url(QueueName="t-agent-queue")["QueueUrl"]
    attributes = client.get_queue_attributes(QueueUrl=main, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    dead = client.get_queue_url(QueueName="t-agent-queue-dead")["QueueUrl"]
    dead_arn = client.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert redrive == {"deadLetterTargetArn": dead_arn, "maxReceiveCount": 2}
    assert dead_arn.endswith(":t-agent-queue-dead")
    assert queue.dead_letters() == 0


def test_create_adds_only_what_is_missing(aws: str, queue: SqsAgentQueue) -> None:
    client = sqs(aws)
    client.delete_queue(QueueUrl=client.get_queue_url(QueueName="t-agent-queue")["QueueUrl"])
    assert SqsAgentQueue("t", endpoint_url=aws, max_receives=2).create() == ["t-agent-queue"]


# -- put and claim


def test_a_put_task_is_claimed_once_with_a_live_lease_for_that_worker(
    aws: str, queue: SqsAgentQueue, other: SqsAgentQueue
) -> None:
    assert queue.lease("t1") is None
    assert queue.put("t1") is True
    assert counts(aws) == (1, 0)
    # Unlike the SQLite queue, a put task has no lease entry until a worker takes it.
    assert queue.lease("t1") is None

    before = time.time()
    assert queue.claim("w1", LONG) == "t1"
    lease = queue.lease("t1")
    assert lease is not None and lease.worker == "w1" and lease.live()
    assert before + LONG <= (lease.lease_until or 0) <= time.time() + LONG
    assert counts(aws) == (0, 1)  # the message is in flight, invisible for the lease
    assert other.claim("w2", LONG) is None
    assert queue.claim("w1", LONG) is None
    assert other.lease("t1") == lease


def test_a_put_while_a_live_worker_holds_the_task_only_marks_it_wanted(
    aws: str, queue: SqsAgentQueue, other: SqsAgentQueue
) -> None:
    queue.put("t1")
    assert queue.claim("w1", LONG) == "t1"
    assert wanted(aws, "t1") is False
    held = queue.lease("t1")

    assert other.put("t1") is False  # no new worker is needed: the holder goes round again
    assert wanted(aws, "t1") is True
    assert counts(aws) == (0, 1)  # no second message was sent
    assert other.lease("t1") == held  # the lease is untouched
    assert other.claim("w2", LONG) is None
    assert other.claim("w2", LONG, "t1") is None


def test_release_after_a_wake_up_frees_the_lease_and_the_holder_goes_round_again_by_name(
    aws: str, queue: SqsAgentQueue, other: SqsAgentQueue
) -> None:
    queue.put("t1")
    queue.claim("w1", LONG)
    other.put("t1")
    assert queue.release("t1", "w1") is True
    assert queue.lease("t1") is None  # nobody holds it; the holder takes it again by name
    assert wanted(aws, "t1") is False
    assert counts(aws) == (0, 1)  # the wake-up's message is kept (still in flight)

    assert queue.claim("w1", LONG, "t1") == "t1"  # as Worker.run_queued does
    assert queue.lease("t1").worker == "w1"  # type: ignore[union-attr]
    # A claim clears the wanted mark: the next release without a wake-up lets go for good.
    assert queue.release("t1", "w1") is False
    assert queue.lease("t1") is None
    assert counts(aws) == (0, 0)


def test_release_without_a_wake_up_removes_the_lease_and_deletes_the_message(
    aws: str, queue: SqsAgentQueue, other: SqsAgentQueue
) -> None:
    queue.put("t1")
    assert queue.claim("w1", 1.0) == "t1"
    assert queue.release("t1", "w1") is False
    assert queue.lease("t1") is None
    assert "worker" not in (item(aws, "t1") or {}), "what is left is a tombstone: which wake-ups the run served"
    assert counts(aws) == (0, 0)
    time.sleep(1.2)  # past the visibility timeout: a message not deleted would be back by now
    assert other.claim("w2", 1.0) is None
    assert queue.claim("w1", 1.0) is None


def test_a_duplicate_delivery_never_gives_the_task_to_a_second_worker(
    aws: str, queue: SqsAgentQueue, other: SqsAgentQueue
) -> None:
    queue.put("t1")
    assert queue.claim("w1", LONG) == "t1"
    held = queue.lease("t1")
    # SQS is at-least-once: the same wake-up arrives a second time.
    sqs(aws).send_message(QueueUrl=queue.url, MessageBody=json.dumps({"task_id": "t1"}))
    assert counts(aws) == (1, 1)

    assert other.claim("w2", LONG) is None
    assert other.lease("t1") == held
    assert wanted(aws, "t1") is True  # the holder goes round once more instead
    assert counts(aws) == (0, 1)  # the duplicate was dropped; the holder's message is still in flight
    assert queue.release("t1", "w1") is True


# -- leases that run out, heartbeats, takeovers


def test_a_dead_workers_task_is_delivered_again_and_the_lease_changes_hands(
    aws: str, queue: SqsAgentQueue, other: SqsAgentQueue
) -> None:
    queue.put("t1")
    assert queue.claim("w1", 1.0) == "t1"
    first = queue.lease("t1")
    assert first is not None and first.live()
    time.sleep(1.5)  # w1 died: no renewal
    assert not queue.lease("t1").live()  # type: ignore[union-attr]

    assert other.claim("w2", LONG) == "t1"  # the same message, visible again
    assert counts(aws) == (0, 1)
    lease = other.lease("t1")
    assert lease is not None and lease.worker == "w2" and lease.live()
    # The worker whose lease ran out holds nothing any more.
    assert queue.renew("t1", "w1", LONG) is False
    assert queue.release("t1", "w1") is False
    assert other.lease("t1") == lease
    assert counts(aws) == (0, 1)  # w1's release did not delete w2's message


def test_renewing_extends_the_lease_and_keeps_the_message_invisible_past_its_first_term(
    queue: SqsAgentQueue, other: SqsAgentQueue
) -> None:
    queue.put("t1")
    start = time.monotonic()
    assert queue.claim("w1", 2.0) == "t1"
    until = queue.lease("t1").lease_until  # type: ignore[union-attr]
    while time.monotonic() - start < 3.0:
        time.sleep(0.2)
        assert queue.renew("t1", "w1", 2.0) is True  # the heartbeat, about once a second
        renewed = queue.lease("t1").lease_until  # type: ignore[union-attr]
        assert renewed is not None and until is not None and renewed > until
        until = renewed
        assert other.claim("w2", 2.0) is None  # long-polls about a second
    assert time.monotonic() - start > 3.0  # well past the first 2 s term
    lease = other.lease("t1")
    assert lease is not None and lease.worker == "w1" and lease.live()


def test_only_the_holder_can_renew_or_release(queue: SqsAgentQueue, other: SqsAgentQueue) -> None:
    queue.put("t1")
    queue.claim("w1", 10.0)
    queue.put("t1")
    first = queue.lease("t1").lease_until  # type: ignore[union-attr]
    assert other.renew("t1", "w2", 1_000.0) is False
    assert queue.lease("t1").lease_until == first  # type: ignore[union-attr]
    assert other.release("t1", "w2") is False
    assert other.release("t1", "w2") is False
    assert queue.lease("t1").worker == "w1"  # type: ignore[union-attr]

    assert queue.renew("t1", "w1", 1_000.0) is True
    renewed = queue.lease("t1").lease_until  # type: ignore[union-attr]
    assert renewed is not None and first is not None and renewed > first + 900
    assert queue.release("t1", "w1") is True  # the wanted mark survived the stranger's attempts
    assert queue.renew("never-queued", "w1", LONG) is False
    assert queue.release("never-queued", "w1") is False
    assert queue.lease("never-queued") is None


def test_expire_ends_a_live_lease_and_another_worker_claims_the_task_at_once(
    aws: str, queue: SqsAgentQueue, other: SqsAgentQueue
) -> None:
    queue.put("t1")
    assert queue.claim("w1", LONG) == "t1"
    queue.expire("t1")
    lease = queue.lease("t1")
    assert lease is not None and lease.worker == "w1" and not lease.live()
    assert counts(aws) == (1, 0)  # visible again now, not in a minute

    assert other.claim("w2", LONG) == "t1"  # no name given: it came from SQS
    assert other.lease("t1").worker == "w2"  # type: ignore[union-attr]
    assert queue.renew("t1", "w1", LONG) is False
    assert queue.release("t1", "w1") is False


def test_claim_by_name_of_a_held_task_finds_nothing_and_of_a_never_queued_task_takes_a_lease(
    aws: str, queue: SqsAgentQueue, other: SqsAgentQueue
) -> None:
    queue.put("t1")
    queue.claim("w1", LONG)
    assert other.claim("w2", LONG, "t1") is None

    # Unlike the SQLite queue (which returns None), a claim by name needs no queued message: it
    # takes the lease outright. This is how `shipway worker --task ID` takes its task with SQS.
    assert other.claim("w2", LONG, "never-queued") == "never-queued"
    lease = other.lease("never-queued")
    assert lease is not None and lease.worker == "w2" and lease.live()
    assert queue.claim("w1", LONG, "never-queued") is None
    assert counts(aws) == (0, 1)  # nothing was sent or received for it
    assert other.release("never-queued", "w2") is False
    assert other.lease("never-queued") is None


def test_expire_of_a_never_queued_task_creates_nothing(aws: str, queue: SqsAgentQueue) -> None:
    queue.expire("never-queued")
    assert queue.lease("never-queued") is None
    assert item(aws, "never-queued") is None


# -- dead letters


def test_a_task_that_kills_every_worker_ends_in_the_dead_letter_queue_after_max_receives(
    aws: str, queue: SqsAgentQueue, other: SqsAgentQueue
) -> None:
    queue.put("t1")
    assert queue.claim("w1", 1.0) == "t1"  # delivery 1; w1 dies
    time.sleep(1.5)
    assert other.claim("w2", 1.0) == "t1"  # delivery 2; w2 dies too
    time.sleep(1.5)
    # moto (like SQS) moves the message on the next receive once it was received maxReceiveCount times:
    # until then it waits, visible, in the main queue.
    assert queue.dead_letters() == 0
    assert counts(aws) == (1, 0)

    assert queue.claim("w3", 1.0) is None  # this receive moved it instead of delivering it
    wait_until(lambda: queue.dead_letters() == 1, within=5)
    assert counts(aws) == (0, 0)
    assert other.claim("w4", 1.0) is None
    client = sqs(aws)
    dead = client.get_queue_url(QueueName="t-agent-queue-dead")["QueueUrl"]
    letters = client.receive_message(QueueUrl=dead, MaxNumberOfMessages=10, WaitTimeSeconds=0)["Messages"]
    assert [json.loads(m["Body"]) for m in letters] == [{"task_id": "t1"}]


# -- bugs: a wake-up's only message deleted while the holder can still die


def test_a_dead_workers_task_comes_back_when_its_lease_is_not_whole_seconds(
    queue: SqsAgentQueue, other: SqsAgentQueue
) -> None:
    queue.put("t1")
    assert queue.claim("w1", 1.9) == "t1"  # the message is invisible for 1 s only
    time.sleep(1.2)
    assert queue.lease("t1").live()  # type: ignore[union-attr]
    assert other.claim("w2", 1.9) is None  # held: right, but it dropped w1's only message
    time.sleep(1.0)  # w1 died without renewing; its lease ran out
    assert not queue.lease("t1").live()  # type: ignore[union-attr]
    assert other.claim("w2", LONG) == "t1"


def test_a_dead_by_name_workers_task_comes_back(queue: SqsAgentQueue, other: SqsAgentQueue) -> None:
    queue.put("t1")  # AgentDispatch.wake, then `shipway worker --task t1` (spawn)
    assert queue.claim("w1", 1.0, "t1") == "t1"
    assert other.claim("w2", 1.0) is None  # a `shipway worker` on another machine sees the put's message
    time.sleep(1.2)  # w1 died without renewing
    assert not queue.lease("t1").live()  # type: ignore[union-attr]
    assert other.claim("w2", LONG) == "t1"


def test_a_task_claimed_by_name_and_released_leaves_the_queue(queue: SqsAgentQueue, other: SqsAgentQueue) -> None:
    queue.put("t1")  # AgentDispatch.wake, then `shipway worker --task t1` (spawn)
    assert queue.claim("w1", LONG, "t1") == "t1"
    assert queue.release("t1", "w1") is False  # done, nothing woke it meanwhile
    assert queue.lease("t1") is None
    assert other.claim("w2", LONG) is None


# -- errors


def test_a_missing_queue_is_a_store_error_naming_tables_create(aws: str, queue: SqsAgentQueue) -> None:
    client = sqs(aws)
    client.delete_queue(QueueUrl=client.get_queue_url(QueueName="t-agent-queue")["QueueUrl"])
    fresh = SqsAgentQueue("t", endpoint_url=aws, max_receives=2)
    with pytest.raises(StoreError, match="shipway tables create"):
        fresh.put("t1")
    with pytest.raises(StoreError, match="shipway tables create"):
        fresh.claim("w1", LONG)


def test_put_before_create_is_a_store_error_naming_tables_create(aws: str) -> None:
    never_created = SqsAgentQueue("t", endpoint_url=aws)
    with pytest.raises(StoreError, match="shipway tables create"):
        never_created.put("t1")


def test_claim_before_create_is_a_store_error_naming_tables_create(aws: str) -> None:
    with pytest.raises(StoreError, match="shipway tables create"):
        SqsAgentQueue("t", endpoint_url=aws).claim("w1", LONG)


def test_an_unreachable_endpoint_is_a_store_error_when_reading_releasing_expiring_or_receiving(aws: str) -> None:
    down = SqsAgentQueue("t", endpoint_url=closed_port_url())
    for call in (
        lambda: down.lease("t1"),
        lambda: down.release("t1", "w1"),
        lambda: down.expire("t1"),
        lambda: down.claim("w1", LONG),
        lambda: down.create(),
    ):
        with pytest.raises(StoreError, match="Could not connect"):
            call()


@pytest.mark.parametrize("operation", ["put", "renew", "claim by name"])
def test_an_unreachable_endpoint_is_a_store_error_when_waking_renewing_or_claiming_by_name(
    aws: str, operation: str
) -> None:
    down = SqsAgentQueue("t", endpoint_url=closed_port_url())
    calls: dict[str, Callable[[], object]] = {
        "put": lambda: down.put("t1"),
        "renew": lambda: down.renew("t1", "w1", LONG),
        "claim by name": lambda: down.claim("w1", LONG, "t1"),
    }
    with pytest.raises(StoreError, match="Could not connect"):
        calls[operation]()
