"""`S3Preview`: build in the sandbox, upload the static output to `s3://BUCKET/PREFIX/<task>/`.

Endpoint, region and credentials come from boto3's standard configuration (environment,
`~/.aws`, instance roles), with `endpoint_url` for S3-compatible stores (MinIO, Ceph, moto).
With `cloudformation`, each preview gets a stack of its own (`shipway-preview-<task>`: a
bucket with website hosting and a public-read policy) and teardown deletes the stack.

Only regular files are uploaded: a symlink in the output (which could point at a host file
outside the snapshot) is skipped and listed. Credentials are used on the host only; the build
runs in the sandbox with the environment scrubbed and no network.
"""

from __future__ import annotations

import contextlib
import json
import mimetypes
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, WaiterError

from sandbox.base import Sandbox
from tools.preview.base import Deployment, Ending, PreviewFailed, PreviewJob, TargetName
from tools.preview.build import note, run_build
from tools.preview.detect import load_preview_config, static_dir

STACK_PREFIX = "shipway-preview-"
DELETE_BATCH = 1000


@dataclass(frozen=True)
class S3Settings:
    bucket: str | None = None
    prefix: str = "previews"
    endpoint_url: str | None = None
    region: str | None = None
    public_url: str | None = None
    """Base URL reviewers open (a website endpoint or CDN); default: the bucket's S3 URL."""
    cloudformation: bool = False
    max_files: int = 5_000
    max_bytes: int = 512 << 20


@dataclass(frozen=True)
class SiteFile:
    path: Path
    key: str
    size: int


@contextlib.contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Translate boto3's failures into one actionable line (never echoing credentials)."""
    try:
        yield
    except NoCredentialsError as exc:
        raise PreviewFailed(f"{what}: no AWS credentials found; set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                            "AWS_SECRET_ACCESS_KEY, in the environment Shipway runs in") from exc  # fmt: skip
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise PreviewFailed(f"{what}: {error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")) from exc
    except (BotoCoreError, WaiterError) as exc:
        raise PreviewFailed(f"{what}: {exc}") from exc


def site_files(site: Path, max_files: int, max_bytes: int) -> tuple[list[SiteFile], list[str]]:
    """Regular files under `site` (never following links) and the symlinks skipped; PreviewFailed over the caps."""
    files: list[SiteFile] = []
    skipped: list[str] = []
    total = 0
    for root, dirs, names in os.walk(site, followlinks=False):
        base = Path(root)
        skipped += [(base / d).relative_to(site).as_posix() + "/" for d in dirs if (base / d).is_symlink()]
        for name in names:
            path = base / name
            info = path.lstat()
            key = path.relative_to(site).as_posix()
            if not path.is_file() or path.is_symlink():
                skipped.append(key)
                continue
            files.append(SiteFile(path, key, info.st_size))
            total += info.st_size
            if len(files) > max_files or total > max_bytes:
                limit = f"{max_files:,} files, {max_bytes >> 20} MiB"
                raise PreviewFailed(f"the preview's output is over the upload limit ({limit}); point [preview] "
                                    "output at the built site only")  # fmt: skip
    return sorted(files, key=lambda f: f.key), sorted(skipped)


def _stack_template(task_id: str) -> str:
    bucket = {
        "Type": "AWS::S3::Bucket",
        "Properties": {
            "WebsiteConfiguration": {"IndexDocument": "index.html"},
            "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "IgnorePublicAcls": True,
                                               "BlockPublicPolicy": False, "RestrictPublicBuckets": False},
            "Tags": [{"Key": "shipway-task", "Value": task_id}],
        },
    }  # fmt: skip
    policy = {
        "Type": "AWS::S3::BucketPolicy",
        "Properties": {
            "Bucket": {"Ref": "PreviewBucket"},
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                "Resource": {"Fn::Join": ["", ["arn:aws:s3:::", {"Ref": "PreviewBucket"}, "/*"]]}}]},
        },
    }  # fmt: skip
    outputs = {"BucketName": {"Value": {"Ref": "PreviewBucket"}},
               "WebsiteURL": {"Value": {"Fn::GetAtt": ["PreviewBucket", "WebsiteURL"]}}}  # fmt: skip
    template = {"AWSTemplateFormatVersion": "2010-09-09", "Description": f"Shipway preview of task {task_id}",
                "Resources": {"PreviewBucket": bucket, "PreviewPolicy": policy}, "Outputs": outputs}  # fmt: skip
    return json.dumps(template)


class S3Preview:
    name: TargetName = "s3"

    def __init__(self, sandbox: Sandbox, settings: S3Settings) -> None:
        if not settings.bucket and not settings.cloudformation:
            raise PreviewFailed(
                "the s3 target needs a bucket: set SHIPWAY_PREVIEW_S3_BUCKET (or SHIPWAY_PREVIEW_S3_CLOUDFORMATION=1 "
                "for a stack per preview); see docs/previews.md"
            )
        self.sandbox = sandbox
        self.settings = settings
        session = boto3.session.Session(region_name=settings.region)
        config = Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"},
                        s3={"addressing_style": "path"} if settings.endpoint_url else None)  # fmt: skip
        self.region = session.region_name or "us-east-1"  # S3 answers on any region; boto3 needs one named
        self.s3 = session.client("s3", endpoint_url=settings.endpoint_url, config=config, region_name=self.region)
        self.cloudformation = session.client("cloudformation", endpoint_url=settings.endpoint_url, config=config,
                                             region_name=self.region)  # fmt: skip

    def key_prefix(self, task_id: str) -> str:
        return f"{self.settings.prefix.strip('/')}/{task_id}/"

    def start(self, job: PreviewJob) -> Deployment:
        config = load_preview_config(job.tree)
        run_build(self.sandbox, job, config)
        site = static_dir(job.tree, config)
        if site is None:
            raise PreviewFailed("the s3 target uploads static files, and none were found: set [preview] output to "
                                "the directory your [preview] build writes (it needs an index.html)")  # fmt: skip
        files, skipped = site_files(site, self.settings.max_files, self.settings.max_bytes)
        inside = site.relative_to(job.tree.resolve())
        skipped += [Path(p).relative_to(inside).as_posix() for p in job.left_out if Path(p).is_relative_to(inside)]
        bucket, website = self._bucket(job.task_id)
        prefix = self.key_prefix(job.task_id)
        self._clear(bucket, prefix)
        with aws_errors(f"uploading to s3://{bucket}/{prefix}"):
            for item in files:
                kind = mimetypes.guess_type(item.key)[0] or "application/octet-stream"
                with item.path.open("rb") as body:
                    self.s3.put_object(Bucket=bucket, Key=prefix + item.key, Body=body, ContentType=kind,
                                       CacheControl="no-cache")  # fmt: skip
        note(job, f"uploaded {len(files)} file(s) to s3://{bucket}/{prefix}" +
             (f"; skipped (not regular files): {', '.join(skipped[:20])}" if skipped else ""))  # fmt: skip
        index = any(f.key == "index.html" for f in files)
        detail = {"bucket": bucket, "prefix": prefix, "files": len(files), "skipped": skipped[:50]}
        return Deployment(url=self._url(bucket, website, prefix, index), detail=detail)

    def _url(self, bucket: str, website: str | None, prefix: str, index: bool) -> str:
        page = "index.html" if index else ""
        if self.settings.public_url:
            return f"{self.settings.public_url.rstrip('/')}/{prefix}{page}"
        if self.settings.endpoint_url:  # an S3-compatible store: path-style, its own website hosting unknown
            return f"{self.settings.endpoint_url.rstrip('/')}/{bucket}/{prefix}{page}"
        if website:
            return f"{website.rstrip('/')}/{prefix}"
        return f"https://{bucket}.s3.{self.region}.amazonaws.com/{prefix}{page}"

    def _bucket(self, task_id: str) -> tuple[str, str | None]:
        """(bucket, website URL or None): the configured bucket, or the preview's own stack's."""
        if not self.settings.cloudformation:
            assert self.settings.bucket is not None
            return self.settings.bucket, None
        stack = STACK_PREFIX + task_id
        with aws_errors(f"creating CloudFormation stack {stack}"):
            if self._stack_outputs(stack) is None:
                self.cloudformation.create_stack(StackName=stack, TemplateBody=_stack_template(task_id),
                                                 Tags=[{"Key": "shipway-task", "Value": task_id}])  # fmt: skip
                waiter = self.cloudformation.get_waiter("stack_create_complete")
                waiter.wait(StackName=stack, WaiterConfig={"Delay": 2, "MaxAttempts": 300})
            outputs = self._stack_outputs(stack) or {}
        if "BucketName" not in outputs:
            raise PreviewFailed(f"CloudFormation stack {stack} has no BucketName output; delete it and deploy again")
        return outputs["BucketName"], outputs.get("WebsiteURL") or None

    def _stack_outputs(self, stack: str) -> dict[str, str] | None:
        try:
            found = self.cloudformation.describe_stacks(StackName=stack)["Stacks"]
        except ClientError as exc:
            if "does not exist" in str(exc):
                return None
            raise
        if not found or found[0].get("StackStatus") == "DELETE_COMPLETE":
            return None
        return {o["OutputKey"]: o.get("OutputValue", "") for o in found[0].get("Outputs", [])}

    def _clear(self, bucket: str, prefix: str) -> int:
        removed = 0
        with aws_errors(f"removing s3://{bucket}/{prefix}"):
            pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            keys: list[Any] = [{"Key": item["Key"]} for page in pages for item in page.get("Contents", [])]
            for start in range(0, len(keys), DELETE_BATCH):
                batch = keys[start : start + DELETE_BATCH]
                self.s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
                removed += len(batch)
        return removed

    def wait(self, job: PreviewJob, stop: threading.Event, deadline: float) -> Ending:
        if stop.wait(max(0.0, deadline - time.monotonic())):
            return Ending(how="stopped", reason="stop requested")
        return Ending(how="expired", reason=f"its time to live ran out ({job.ttl_s:g} s)")

    def stop(self, job: PreviewJob) -> None:
        if not self.settings.cloudformation:
            assert self.settings.bucket is not None
            self._clear(self.settings.bucket, self.key_prefix(job.task_id))
            return
        stack = STACK_PREFIX + job.task_id
        with aws_errors(f"deleting CloudFormation stack {stack}"):
            outputs = self._stack_outputs(stack)
            if outputs is None:
                return
            if "BucketName" in outputs:
                self._clear(outputs["BucketName"], "")  # a bucket must be empty before its stack can go
            self.cloudformation.delete_stack(StackName=stack)
            waiter = self.cloudformation.get_waiter("stack_delete_complete")
            waiter.wait(StackName=stack, WaiterConfig={"Delay": 2, "MaxAttempts": 300})
