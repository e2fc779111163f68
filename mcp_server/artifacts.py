"""The team's artifacts bucket: what one machine produces and another reads, in S3.

With `SHIPWAY_STORE=aws` and `SHIPWAY_AWS_ARTIFACTS_BUCKET`, everything a worker on another
machine (or a reviewer's server) needs beyond the task's event log is kept here, under
`<prefix>/`:

- `agent-runs/<task>/round-<n>/<line>.json`: agent transcripts (mcp_server/transcripts.py);
- `branches/<task>/<commit>.bundle` and `diffs/<task>/<commit>.patch`: each commit of a task's
  branch, as a git bundle a machine without it fetches, and as a patch a person reads
  (mcp_server/shared_branches.py);
- `test-runs/<run>/report.json` and `log.txt`: test reports and their logs (mcp_server/test_runs.py).

Objects are written whole and never changed in place, so S3's read-after-write consistency is
all that is needed. Endpoint, region and credentials come from boto3's standard configuration;
`SHIPWAY_AWS_ENDPOINT_URL` overrides the endpoint.
"""

from __future__ import annotations

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from mcp_server.aws_errors import aws_errors
from mcp_server.config import Settings

PART = "artifacts (S3)"
MISSING = ("404", "NoSuchKey", "NoSuchBucket", "NotFound")


class S3Artifacts:
    """Whole objects under `<prefix>/` of one bucket; `get` answers None for a key that is not there."""

    def __init__(self, bucket: str, prefix: str = "shipway", endpoint_url: str | None = None,
                 region: str | None = None) -> None:  # fmt: skip
        config = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60,
                        s3={"addressing_style": "path"} if endpoint_url else None)  # fmt: skip
        self.s3 = boto3.session.Session(region_name=region).client("s3", endpoint_url=endpoint_url, config=config)
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name.lstrip('/')}"

    def url(self, name: str) -> str:
        """Where a person finds it, for messages."""
        return f"s3://{self.bucket}/{self.key(name)}"

    def put(self, name: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        with aws_errors(PART, f"writing {self.url(name)}"):
            self.s3.put_object(Bucket=self.bucket, Key=self.key(name), Body=data, ContentType=content_type)

    def get(self, name: str) -> bytes | None:
        with aws_errors(PART, f"reading {self.url(name)}"):
            try:
                body: bytes = self.s3.get_object(Bucket=self.bucket, Key=self.key(name))["Body"].read()
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "NoSuchKey":
                    return None
                raise
            return body

    def names(self, under: str) -> list[str]:
        """The names below `under` (a folder, ending in /), sorted."""
        start = len(self.prefix) + 1
        with aws_errors(PART, f"listing {self.url(under)}"):
            pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.key(under))
            return sorted(item["Key"][start:] for page in pages for item in page.get("Contents", []))

    def delete(self, name: str) -> None:
        with aws_errors(PART, f"removing {self.url(name)}"):
            self.s3.delete_object(Bucket=self.bucket, Key=self.key(name))

    def create_bucket(self) -> bool:
        """Create the bucket if it is missing; True when it was created."""
        with aws_errors(PART, f"creating bucket {self.bucket}"):
            try:
                self.s3.head_bucket(Bucket=self.bucket)
                return False
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in MISSING:
                    raise
            region = self.s3.meta.region_name
            if region and region != "us-east-1":
                self.s3.create_bucket(Bucket=self.bucket,
                                      CreateBucketConfiguration={"LocationConstraint": region})  # type: ignore[typeddict-item]  # fmt: skip
            else:
                self.s3.create_bucket(Bucket=self.bucket)
            return True


def shared_bucket(settings: Settings) -> str | None:
    """The team's bucket (`SHIPWAY_STORE=aws` and `SHIPWAY_AWS_ARTIFACTS_BUCKET`), or None: all stays local."""
    return settings.aws_artifacts_bucket if settings.store == "aws" else None


def open_artifacts(settings: Settings) -> S3Artifacts | None:
    bucket = shared_bucket(settings)
    if bucket:
        return S3Artifacts(bucket, settings.aws_table_prefix, settings.aws_endpoint_url,
                           settings.aws_region)  # fmt: skip
    return None
