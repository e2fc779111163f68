"""`SqsAgentQueue`: the agent work queue for many workers on many machines (SQS + a DynamoDB lease table).

SQS carries the wake-ups: `put` sends a message naming the task. A worker receives one with a
visibility timeout equal to its lease, so a worker that dies simply stops renewing and the
message comes back to another worker when the lease runs out. After `max_receives`
deliveries that never finished (a task that kills every worker that takes it), SQS moves the
message to the dead-letter queue `<queue>-dead`.

DynamoDB (`<prefix>-leases`) holds who works on which task, with conditional writes, so two
deliveries of the same task (SQS is at-least-once) never give it to two workers at once: the
second finds the lease taken, marks the task `wanted` (the holder goes round once more before
letting go) and drops its copy. Heartbeats renew both the lease and the message's visibility.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from mcp_server.agent_queue import Lease
from mcp_server.errors import StoreError

MAX_RECEIVES = 5
_FREE = "attribute_not_exists(task_id) OR attribute_not_exists(worker) OR lease_until <= :now"


@contextlib.contextmanager
def _queue_errors(what: str) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise StoreError(f"agent queue (AWS) {what}: {error.get('Code')}: {error.get('Message')}") from exc
    except BotoCoreError as exc:
        raise StoreError(f"agent queue (AWS) {what}: {exc}") from exc


def _condition_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class SqsAgentQueue:
    def __init__(self, prefix: str = "shipway", endpoint_url: str | None = None, region: str | None = None,
                 max_receives: int = MAX_RECEIVES) -> None:  # fmt: skip
        config = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30)
        session = boto3.session.Session(region_name=region)
        self.sqs = session.client("sqs", endpoint_url=endpoint_url, config=config)
        self.db = session.client("dynamodb", endpoint_url=endpoint_url, config=config)
        self.queue_name = f"{prefix}-agent-queue"
        self.leases_table = f"{prefix}-leases"
        self.max_receives = max_receives
        self._url: str | None = None

    # -- setup

    def create(self) -> list[str]:
        """Create the queue, its dead-letter queue and the lease table if missing; the names created."""
        made: list[str] = []
        with _queue_errors("creating the queue"):
            existing = set(self.db.list_tables().get("TableNames", []))
            if self.leases_table not in existing:
                self.db.create_table(TableName=self.leases_table, BillingMode="PAY_PER_REQUEST",
                                     AttributeDefinitions=[{"AttributeName": "task_id", "AttributeType": "S"}],
                                     KeySchema=[{"AttributeName": "task_id", "KeyType": "HASH"}])  # fmt: skip
                self.db.get_waiter("table_exists").wait(TableName=self.leases_table,
                                                        WaiterConfig={"Delay": 1, "MaxAttempts": 60})  # fmt: skip
                made.append(self.leases_table)
            names = set(self.sqs.list_queues(QueueNamePrefix=self.queue_name).get("QueueUrls", []))
            dead_name = f"{self.queue_name}-dead"
            dead_url = self.sqs.create_queue(QueueName=dead_name, Attributes={"MessageRetentionPeriod": "1209600"})
            dead_arn = self.sqs.get_queue_attributes(QueueUrl=dead_url["QueueUrl"], AttributeNames=["QueueArn"])
            redrive = {"deadLetterTargetArn": dead_arn["Attributes"]["QueueArn"], "maxReceiveCount": self.max_receives}
            main = self.sqs.create_queue(QueueName=self.queue_name, Attributes={"RedrivePolicy": json.dumps(redrive)})
            for url, name in ((dead_url["QueueUrl"], dead_name), (main["QueueUrl"], self.queue_name)):
                if url not in names:
                    made.append(name)
        return made

    @property
    def url(self) -> str:
        if self._url is None:
            with _queue_errors(f"finding queue {self.queue_name} (run `shipway tables create`)"):
                self._url = self.sqs.get_queue_url(QueueName=self.queue_name)["QueueUrl"]
        return self._url

    def dead_letters(self) -> int:
        """Messages in the dead-letter queue (approximate, as SQS counts)."""
        with _queue_errors("reading the dead-letter queue"):
            url = self.sqs.get_queue_url(QueueName=f"{self.queue_name}-dead")["QueueUrl"]
            found = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(found["Attributes"]["ApproximateNumberOfMessages"])

    # -- the AgentQueue protocol

    def put(self, task_id: str) -> bool:
        now = time.time()
        try:
            values = {":yes": {"BOOL": True}, ":now": {"N": repr(now)}}
            self.db.update_item(TableName=self.leases_table, Key={"task_id": {"S": task_id}},
                                UpdateExpression="SET wanted = :yes", ExpressionAttributeValues=values,  # type: ignore[arg-type]
                                ConditionExpression="attribute_exists(worker) AND lease_until > :now")  # fmt: skip
            return False  # a live worker holds it: it goes round again instead
        except ClientError as exc:
            if not _condition_failed(exc):
                raise StoreError(f"agent queue (AWS) waking {task_id}: {exc}") from exc
        with _queue_errors(f"queueing {task_id}"):
            self.sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps({"task_id": task_id}))
        return True

    def _take(self, task_id: str, worker: str, lease_s: float, receipt: str | None) -> bool:
        now = time.time()
        values: dict[str, Any] = {":w": {"S": worker}, ":until": {"N": repr(now + lease_s)}, ":now": {"N": repr(now)},
                                  ":no": {"BOOL": False}}  # fmt: skip
        update = "SET worker = :w, lease_until = :until, wanted = :no"
        if receipt is not None:
            update += ", receipt = :r"
            values[":r"] = {"S": receipt}
        try:
            self.db.update_item(TableName=self.leases_table, Key={"task_id": {"S": task_id}}, UpdateExpression=update,
                                ConditionExpression=_FREE, ExpressionAttributeValues=values)  # fmt: skip
            return True
        except ClientError as exc:
            if _condition_failed(exc):
                return False
            raise StoreError(f"agent queue (AWS) leasing {task_id}: {exc}") from exc

    def claim(self, worker: str, lease_s: float, task_id: str | None = None) -> str | None:
        if task_id is not None:
            return task_id if self._take(task_id, worker, lease_s, None) else None
        while True:
            with _queue_errors("receiving"):
                got = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=1,
                                               VisibilityTimeout=max(1, int(lease_s)), WaitTimeSeconds=1)  # fmt: skip
            messages = got.get("Messages", [])
            if not messages:
                return None
            message = messages[0]
            found = json.loads(message["Body"])["task_id"]
            if self._take(found, worker, lease_s, message["ReceiptHandle"]):
                return str(found)
            # Another worker holds it (a second delivery, or a wake-up): it goes round again; drop this copy.
            self.put(found)
            with _queue_errors("dropping a duplicate"):
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])

    def renew(self, task_id: str, worker: str, lease_s: float) -> bool:
        try:
            values = {":w": {"S": worker}, ":until": {"N": repr(time.time() + lease_s)}}
            found = self.db.update_item(TableName=self.leases_table, Key={"task_id": {"S": task_id}},
                                        UpdateExpression="SET lease_until = :until", ReturnValues="ALL_NEW",
                                        ConditionExpression="worker = :w",
                                        ExpressionAttributeValues=values)  # fmt: skip
        except ClientError as exc:
            if _condition_failed(exc):
                return False
            raise StoreError(f"agent queue (AWS) renewing {task_id}: {exc}") from exc
        receipt = found.get("Attributes", {}).get("receipt", {}).get("S")
        if receipt:  # the heartbeat: keep the message invisible as long as the lease lives
            with contextlib.suppress(ClientError):
                self.sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=receipt,
                                                   VisibilityTimeout=max(1, int(lease_s)))  # fmt: skip
        return True

    def release(self, task_id: str, worker: str) -> bool:
        key = {"task_id": {"S": task_id}}
        with _queue_errors(f"releasing {task_id}"):
            item = self.db.get_item(TableName=self.leases_table, Key=key, ConsistentRead=True).get("Item")
        if item is None or item.get("worker", {}).get("S") != worker:
            return False
        mine = {":w": {"S": worker}}
        try:  # not woken meanwhile: the work is done, the message goes
            self.db.delete_item(TableName=self.leases_table, Key=key, ConditionExpression="worker = :w AND "
                                "wanted = :no", ExpressionAttributeValues={**mine, ":no": {"BOOL": False}})  # fmt: skip
        except ClientError as exc:
            if not _condition_failed(exc):
                raise StoreError(f"agent queue (AWS) releasing {task_id}: {exc}") from exc
            with _queue_errors(f"releasing {task_id}"):  # woken: keep the message, free the lease, go round
                self.db.update_item(TableName=self.leases_table, Key=key, ConditionExpression="worker = :w",
                                    UpdateExpression="REMOVE worker, lease_until SET wanted = :no",
                                    ExpressionAttributeValues={**mine, ":no": {"BOOL": False}})  # fmt: skip
            return True
        receipt = item.get("receipt", {}).get("S")
        if receipt:
            with contextlib.suppress(ClientError):  # already gone back to the queue: it is a harmless wake-up
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=receipt)
        return False

    def lease(self, task_id: str) -> Lease | None:
        with _queue_errors(f"reading the lease of {task_id}"):
            item = self.db.get_item(TableName=self.leases_table, Key={"task_id": {"S": task_id}},
                                    ConsistentRead=True).get("Item")  # fmt: skip
        if item is None:
            return None
        until = item.get("lease_until", {}).get("N")
        return Lease(task_id=task_id, worker=item.get("worker", {}).get("S"),
                     lease_until=float(until) if until is not None else None)  # fmt: skip

    def expire(self, task_id: str) -> None:
        with _queue_errors(f"expiring the lease of {task_id}"):
            found = self.db.update_item(TableName=self.leases_table, Key={"task_id": {"S": task_id}},
                                        UpdateExpression="SET lease_until = :zero", ReturnValues="ALL_NEW",
                                        ExpressionAttributeValues={":zero": {"N": "0"}})  # fmt: skip
        receipt = found.get("Attributes", {}).get("receipt", {}).get("S")
        if receipt:
            with contextlib.suppress(ClientError):
                self.sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=receipt, VisibilityTimeout=0)
