"""Deploy previews: a task's commit served from the sandbox (local) or uploaded to S3 (s3)."""
