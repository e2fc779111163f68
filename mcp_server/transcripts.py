"""Where agent transcripts live: files under the state directory, or an S3 bucket a team shares.

A transcript is a round's conversation, one line per step (TaskJournal writes it; the task's
events carry each line's sha256). A worker on another machine resumes a task from it, so with
many machines it must be shared: `S3Transcripts` keeps each line as its own object,
`<prefix>/agent-runs/<task>/round-<n>/<line>.json` (S3 has no append), and lists them in order.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from mcp_server.aws_errors import aws_errors

RUNS_DIR = "agent-runs"


class Transcripts(Protocol):
    def lines(self, task_id: str, round_no: int) -> list[bytes]: ...

    def append(self, task_id: str, round_no: int, line: bytes) -> None:
        """Add a line durably (it is on disk, or in S3, when this returns)."""
        ...

    def truncate(self, task_id: str, round_no: int, keep: int) -> None:
        """Drop lines past the first `keep` (written by a step that crashed before its event)."""
        ...

    def where(self, task_id: str, round_no: int) -> str:
        """Where a person finds it (a path or an s3:// URL), for messages."""
        ...


class LocalTranscripts:
    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / RUNS_DIR

    def _file(self, task_id: str, round_no: int) -> Path:
        return self.root / task_id / f"round-{round_no}.jsonl"

    def lines(self, task_id: str, round_no: int) -> list[bytes]:
        path = self._file(task_id, round_no)
        return path.read_bytes().splitlines() if path.exists() else []

    def append(self, task_id: str, round_no: int, line: bytes) -> None:
        path = self._file(task_id, round_no)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as out:
            out.write(line + b"\n")
            out.flush()
            os.fsync(out.fileno())

    def truncate(self, task_id: str, round_no: int, keep: int) -> None:
        path = self._file(task_id, round_no)
        if keep == 0:
            path.unlink(missing_ok=True)
        elif path.exists():
            path.write_bytes(b"".join(line + b"\n" for line in self.lines(task_id, round_no)[:keep]))

    def where(self, task_id: str, round_no: int) -> str:
        return str(self._file(task_id, round_no))


class S3Transcripts:
    def __init__(self, bucket: str, prefix: str = "shipway", endpoint_url: str | None = None,
                 region: str | None = None) -> None:  # fmt: skip
        config = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60,
                        s3={"addressing_style": "path"} if endpoint_url else None)  # fmt: skip
        self.s3 = boto3.session.Session(region_name=region).client("s3", endpoint_url=endpoint_url, config=config)
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def _dir(self, task_id: str, round_no: int) -> str:
        return f"{self.prefix}/{RUNS_DIR}/{task_id}/round-{round_no}/"

    def _keys(self, task_id: str, round_no: int) -> list[str]:
        with aws_errors("transcripts (S3)", f"listing {self.where(task_id, round_no)}"):
            pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                       Prefix=self._dir(task_id, round_no))  # fmt: skip
            return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def lines(self, task_id: str, round_no: int) -> list[bytes]:
        with aws_errors("transcripts (S3)", f"reading {self.where(task_id, round_no)}"):
            return [
                self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read() for key in self._keys(task_id, round_no)
            ]

    def append(self, task_id: str, round_no: int, line: bytes) -> None:
        key = f"{self._dir(task_id, round_no)}{len(self._keys(task_id, round_no)) + 1:06d}.json"
        with aws_errors("transcripts (S3)", f"writing {key}"):
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=line, ContentType="application/json")

    def truncate(self, task_id: str, round_no: int, keep: int) -> None:
        for key in self._keys(task_id, round_no)[keep:]:
            with aws_errors("transcripts (S3)", f"removing {key}"):
                self.s3.delete_object(Bucket=self.bucket, Key=key)

    def where(self, task_id: str, round_no: int) -> str:
        return f"s3://{self.bucket}/{self._dir(task_id, round_no)}"

    def create_bucket(self) -> bool:
        """Create the bucket if it is missing; True when it was created."""
        with aws_errors("transcripts (S3)", f"creating bucket {self.bucket}"):
            try:
                self.s3.head_bucket(Bucket=self.bucket)
                return False
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                    raise
            region = self.s3.meta.region_name
            if region and region != "us-east-1":
                self.s3.create_bucket(Bucket=self.bucket,
                                      CreateBucketConfiguration={"LocationConstraint": region})  # type: ignore[typeddict-item]  # fmt: skip
            else:
                self.s3.create_bucket(Bucket=self.bucket)
            return True
