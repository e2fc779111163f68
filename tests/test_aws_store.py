"""SHIPWAY_STORE=aws from the command line: tables created, tasks kept in DynamoDB (a real moto server)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from mcp_server.config import load_settings
from mcp_server.tasks.chain import verify_chain
from mcp_server.tasks.dynamo_store import DynamoTaskStore
from tests.test_cli import shipway


@pytest.fixture
def aws_store(aws: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SHIPWAY_STORE", "aws")
    monkeypatch.setenv("SHIPWAY_AWS_ENDPOINT_URL", aws)
    monkeypatch.setenv("SHIPWAY_AWS_TABLE_PREFIX", "team")
    monkeypatch.setenv("SHIPWAY_AWS_ARTIFACTS_BUCKET", "team-artifacts")
    return aws


def test_tables_create_makes_both_tables_once(aws_store: str, repo: Path) -> None:
    first = shipway("tables", "create", "--repo", str(repo))
    assert first.returncode == 0, first.stderr
    names = [
        "team-tasks",
        "team-events",
        "team-leases",
        "team-agent-queue-dead",
        "team-agent-queue",
        "s3://team-artifacts",
    ]
    assert first.stdout.splitlines() == [f"{name}: created" for name in names]
    again = shipway("tables", "create", "--repo", str(repo))
    assert again.stdout.splitlines() == [f"{name}: already there" for name in names]
    tables = boto3.client("dynamodb", endpoint_url=aws_store).list_tables()["TableNames"]
    assert sorted(tables) == ["team-events", "team-leases", "team-tasks"]
    queues = boto3.client("sqs", endpoint_url=aws_store).list_queues()["QueueUrls"]
    assert sorted(url.rsplit("/", 1)[1] for url in queues) == ["team-agent-queue", "team-agent-queue-dead"]


def test_tasks_started_from_the_cli_live_in_dynamodb_not_in_sqlite(aws_store: str, repo: Path) -> None:
    assert shipway("tables", "create", "--repo", str(repo)).returncode == 0
    started = shipway("task", "start", "--manual", "Rename the helper", "--repo", str(repo), "--json")
    assert started.returncode == 0, started.stderr
    task_id = json.loads(started.stdout)["id"]
    aborted = shipway("task", "abort", task_id[:6], "--reason", "not needed", "--repo", str(repo))
    assert aborted.returncode == 0, aborted.stderr
    listed = json.loads(shipway("task", "list", "--repo", str(repo), "--json").stdout)
    assert [(t["id"], t["state"]) for t in listed["tasks"]] == [(task_id, "aborted")]
    assert shipway("task", "verify", task_id, "--repo", str(repo)).returncode == 0

    store = DynamoTaskStore("team", endpoint_url=aws_store)
    events = store.events(task_id)
    assert [e.action for e in events] == ["created", "aborted"]
    assert verify_chain(store.get(task_id), events).ok
    assert not (repo / ".shipway" / "tasks.db").exists(), "nothing went to the SQLite store"


def test_an_unreachable_dynamodb_is_one_line_naming_it(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPWAY_STORE", "aws")
    monkeypatch.setenv("SHIPWAY_AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-to-be-echoed")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    result = shipway("task", "list", "--repo", str(repo))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "DynamoDB" in lines[0] and "not-to-be-echoed" not in result.stderr, result.stderr


def test_settings_refuse_a_plain_http_dynamodb_endpoint_off_this_machine(repo: Path) -> None:
    with pytest.raises(Exception, match="aws_endpoint_url must be an https"):
        load_settings(repo=repo, store="aws", aws_endpoint_url="http://dynamo.example.com")
