"""`shipway tables create`: the shared AWS resources a team's Shipway uses (docs/scale.md).

Creates what is missing and leaves what exists; safe to run again. Endpoint, region and
credentials come from boto3's standard configuration, `SHIPWAY_AWS_ENDPOINT_URL` and
`SHIPWAY_AWS_REGION`.
"""

from __future__ import annotations

from pathlib import Path

import click

from mcp_server.artifacts import S3Artifacts
from mcp_server.cli_common import repo_option
from mcp_server.config import load_settings
from mcp_server.sqs_queue import SqsAgentQueue
from mcp_server.tasks.dynamo_store import DynamoTaskStore


@click.group("tables")
def tables_group() -> None:
    """The AWS resources shared by many workers (SHIPWAY_STORE=aws)."""


@tables_group.command("create")
@click.option("--prefix", default=None, help="Table name prefix (default: SHIPWAY_AWS_TABLE_PREFIX or 'shipway').")
@repo_option
def tables_create(prefix: str | None, repo: Path | None) -> None:
    """Create the DynamoDB tables (tasks, events, leases) and the SQS queue with its dead-letter queue."""
    settings = load_settings(repo=repo, aws_table_prefix=prefix)
    store = DynamoTaskStore(settings.aws_table_prefix, settings.aws_endpoint_url, settings.aws_region)
    queue = SqsAgentQueue(settings.aws_table_prefix, settings.aws_endpoint_url, settings.aws_region,
                          settings.aws_max_receives)  # fmt: skip
    made = store.create_tables() + queue.create()
    names = [store.tasks_table, store.events_table, queue.leases_table, f"{queue.queue_name}-dead", queue.queue_name]
    if settings.aws_artifacts_bucket:
        bucket = settings.aws_artifacts_bucket
        names.append(f"s3://{bucket}")
        artifacts = S3Artifacts(bucket, settings.aws_table_prefix, settings.aws_endpoint_url, settings.aws_region)
        if artifacts.create_bucket():
            made.append(f"s3://{bucket}")
    for name in names:
        click.echo(f"{name}: {'created' if name in made else 'already there'}")
    if settings.store != "aws":
        click.echo("note: SHIPWAY_STORE is not `aws`, so this Shipway still keeps tasks in SQLite", err=True)
