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
import math
import time
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from mcp_server.agent_queue import Lease
from mcp_server.aws_errors import aws_errors

MAX_RECEIVES = 5
_FREE = "attribute_not_exists(task_id) OR attribute_not_exists(worker) OR lease_until <= :now"


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
        with aws_errors("agent queue (AWS)", "creating the queue"):
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
            with aws_errors("agent queue (AWS)", f"finding queue {self.queue_name} (run `shipway tables create`)"):
                self._url = self.sqs.get_queue_url(QueueName=self.queue_name)["QueueUrl"]
        return self._url

    def dead_letters(self) -> int:
        """Messages in the dead-letter queue (approximate, as SQS counts)."""
        with aws_errors("agent queue (AWS)", "reading the dead-letter queue"):
            url = self.sqs.get_queue_url(QueueName=f"{self.queue_name}-dead")["QueueUrl"]
            found = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(found["Attributes"]["ApproximateNumberOfMessages"])

    # -- the AgentQueue protocol

    def _update(self, task_id: str, what: str, **request: Any) -> dict[str, Any] | None:
        """One UpdateItem on the task's lease: its new attributes, or None when its condition failed."""
        with aws_errors("agent queue (AWS)", f"{what} {task_id}"):
            try:
                found = self.db.update_item(TableName=self.leases_table, Key={"task_id": {"S": task_id}},
                                            ReturnValues="ALL_NEW", **request)  # fmt: skip
            except ClientError as exc:
                if _condition_failed(exc):
                    return None
                raise
        return dict(found.get("Attributes", {}))

    def _item(self, task_id: str) -> dict[str, Any]:
        with aws_errors("agent queue (AWS)", f"reading the lease of {task_id}"):
            found = self.db.get_item(TableName=self.leases_table, Key={"task_id": {"S": task_id}}, ConsistentRead=True)
        return dict(found.get("Item", {}))

    def _visible_in(self, receipt: str, seconds: float) -> None:
        with contextlib.suppress(ClientError, BotoCoreError):  # a handle gone stale: the message is someone else's now
            self.sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=receipt,
                                               VisibilityTimeout=max(0, math.ceil(seconds)))  # fmt: skip

    def put(self, task_id: str) -> bool:
        values = {":yes": {"BOOL": True}, ":now": {"N": repr(time.time())}}
        held = self._update(task_id, "waking", UpdateExpression="SET wanted = :yes", ExpressionAttributeValues=values,
                            ConditionExpression="attribute_exists(worker) AND lease_until > :now")  # fmt: skip
        if held is not None:
            return False  # a live worker holds it: it goes round again instead
        with aws_errors("agent queue (AWS)", f"queueing {task_id}"):
            self.sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps({"task_id": task_id}))
        return True

    def _take(self, task_id: str, worker: str, lease_s: float, since: float,
              message: dict[str, Any] | None) -> bool:  # fmt: skip
        values: dict[str, Any] = {":w": {"S": worker}, ":until": {"N": repr(since + lease_s)},
                                  ":now": {"N": repr(time.time())}, ":no": {"BOOL": False},
                                  ":since": {"N": repr(since)}}  # fmt: skip
        update, condition = "SET worker = :w, lease_until = :until, wanted = :no, claimed_at = :since", _FREE
        if message is not None:  # the lease owns the message: renewed, then deleted, with the lease
            update += ", receipt = :r, message_id = :m"
            sent = int(message.get("Attributes", {}).get("SentTimestamp", "0")) / 1000
            values |= {":r": {"S": message["ReceiptHandle"]}, ":m": {"S": message["MessageId"]},
                       ":sent": {"N": repr(sent)}}  # fmt: skip
            condition = f"({_FREE}) AND (attribute_not_exists(served_before) OR served_before <= :sent)"
        taken = self._update(task_id, "leasing", UpdateExpression=update, ConditionExpression=condition,
                             ExpressionAttributeValues=values)  # fmt: skip
        return taken is not None

    def claim(self, worker: str, lease_s: float, task_id: str | None = None) -> str | None:
        if task_id is not None:
            return task_id if self._take(task_id, worker, lease_s, time.time(), None) else None
        while True:
            since = time.time()  # the lease counts from before the receive, so it never outlives the invisibility
            with aws_errors("agent queue (AWS)", "receiving"):
                got = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=1, WaitTimeSeconds=1,
                                               VisibilityTimeout=math.ceil(lease_s),
                                               MessageSystemAttributeNames=["SentTimestamp"])  # fmt: skip
            messages = got.get("Messages", [])
            if not messages:
                return None
            message: dict[str, Any] = dict(messages[0])
            found = str(json.loads(message["Body"])["task_id"])
            if self._take(found, worker, lease_s, since, message):
                return found
            self._not_taken(found, message)

    def _not_taken(self, task_id: str, message: dict[str, Any]) -> None:
        """A message for a task that is held, or was served already: keep it with its holder, or drop it."""
        item = self._item(task_id)
        sent = int(message.get("Attributes", {}).get("SentTimestamp", "0")) / 1000
        holder = item.get("worker", {}).get("S")
        if holder is None and sent < float(item.get("served_before", {}).get("N", "0")):
            pass  # sent before the run that has since finished began: that run served it
        elif holder is not None and item.get("message_id", {}).get("S") in (None, message["MessageId"]):
            # The holder's own message come back early, or the message of a task claimed by name: it is the
            # holder's; take its newest handle and keep it invisible for the rest of the lease.
            kept = self._update(task_id, "keeping the message of", ConditionExpression="worker = :w",
                                UpdateExpression="SET receipt = :r, message_id = :m",
                                ExpressionAttributeValues={":w": {"S": holder}, ":r": {"S": message["ReceiptHandle"]},
                                                           ":m": {"S": message["MessageId"]}})  # fmt: skip
            if kept is not None:
                self._visible_in(message["ReceiptHandle"], float(kept["lease_until"]["N"]) - time.time())
                return
            self.put(task_id)  # the holder let go meanwhile: queue it afresh
        else:
            self.put(task_id)  # a second delivery, or a wake-up while held: the holder goes round again
        with aws_errors("agent queue (AWS)", "dropping a duplicate"):
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])

    def renew(self, task_id: str, worker: str, lease_s: float) -> bool:
        renewed = self._update(task_id, "renewing", UpdateExpression="SET lease_until = :until",
                               ConditionExpression="worker = :w",
                               ExpressionAttributeValues={":w": {"S": worker},
                                                          ":until": {"N": repr(time.time() + lease_s)}})  # fmt: skip
        if renewed is None:
            return False
        receipt = renewed.get("receipt", {}).get("S")
        if receipt:  # the heartbeat: keep the message invisible as long as the lease lives
            self._visible_in(receipt, lease_s)
        return True

    def release(self, task_id: str, worker: str) -> bool:
        item = self._item(task_id)
        if item.get("worker", {}).get("S") != worker:
            return False
        mine = {":w": {"S": worker}, ":no": {"BOOL": False}}
        # Messages sent before this run began were served by it. (Sent times are SQS's clock, claimed_at this
        # machine's: a skew longer than a whole run could drop a wake-up; NTP keeps it to milliseconds.)
        served = float(item.get("claimed_at", {}).get("N", "0"))
        done = self._update(task_id, "releasing", ConditionExpression="worker = :w AND wanted = :no",
                            UpdateExpression="REMOVE worker, lease_until, receipt, message_id SET served_before = :s",
                            ExpressionAttributeValues={**mine, ":s": {"N": repr(served)}})  # fmt: skip
        if done is None:  # woken meanwhile: keep the message, free the lease; the caller goes round again
            self._update(task_id, "releasing", ConditionExpression="worker = :w",
                         UpdateExpression="REMOVE worker, lease_until SET wanted = :no",
                         ExpressionAttributeValues=mine)  # fmt: skip
            return True
        receipt = item.get("receipt", {}).get("S")
        if receipt:
            with contextlib.suppress(ClientError, BotoCoreError):  # gone back to the queue: dropped as served
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=receipt)
        return False

    def lease(self, task_id: str) -> Lease | None:
        item = self._item(task_id)
        if "worker" not in item:
            return None  # never held, or let go
        until = item.get("lease_until", {}).get("N")
        return Lease(task_id=task_id, worker=item["worker"]["S"],
                     lease_until=float(until) if until is not None else None)  # fmt: skip

    def expire(self, task_id: str) -> None:
        ended = self._update(task_id, "expiring the lease of", UpdateExpression="SET lease_until = :zero",
                             ConditionExpression="attribute_exists(worker)",
                             ExpressionAttributeValues={":zero": {"N": "0"}})  # fmt: skip
        receipt = (ended or {}).get("receipt", {}).get("S")
        if receipt:
            self._visible_in(receipt, 0)
