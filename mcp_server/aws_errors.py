"""One translation of boto3 failures into StoreError, for the AWS backends of the server room.

The task store (DynamoDB), the agent queue (SQS + DynamoDB) and the transcripts (S3) all say
which part failed and what it was doing; a missing table, queue or bucket names the command that
creates them. Credentials never appear: botocore's messages do not carry them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from botocore.exceptions import BotoCoreError, ClientError

from mcp_server.errors import StoreError

MISSING = frozenset({"ResourceNotFoundException", "AWS.SimpleQueueService.NonExistentQueue", "NoSuchBucket"})


@contextlib.contextmanager
def aws_errors(part: str, what: str) -> Iterator[None]:
    """Re-raise boto3 errors inside as StoreError("<part> <what>: <code>: <message>")."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        hint = "; run `shipway tables create`" if code in MISSING else ""
        raise StoreError(f"{part} {what}: {code}: {error.get('Message')}{hint}") from exc
    except BotoCoreError as exc:
        raise StoreError(f"{part} {what}: {exc}") from exc
