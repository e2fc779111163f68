"""The optional build step of a preview (`[preview] build`), run in the sandbox with no network."""

from __future__ import annotations

from sandbox.base import Limits, NetworkPolicy, Sandbox
from tools.preview.base import PreviewFailed, PreviewJob, append_log, log_tail
from tools.preview.detect import PreviewConfig


def note(job: PreviewJob, text: str) -> None:
    """Append a line of Shipway's own to the preview's log."""
    append_log(job.log_path, text.rstrip("\n") + "\n")


def run_build(sandbox: Sandbox, job: PreviewJob, config: PreviewConfig) -> None:
    """Run `[preview] build` over the snapshot; PreviewFailed (with the output) when it fails."""
    if not config.build:
        return
    note(job, f"$ {config.build}")
    limits = Limits(timeout_s=job.build_timeout_s)
    result = sandbox.run(["/bin/sh", "-c", config.build], job.workspace(), limits, NetworkPolicy.NONE)
    append_log(job.log_path, result.stdout + result.stderr)
    if result.exit_code != 0:
        why = result.limit_hit or f"exit {result.exit_code}"
        raise PreviewFailed(
            f"the preview's build `{config.build}` failed ({why}); fix it and deploy again (the build runs in the "
            "sandbox with no network, so dependencies must already be installed)",
            log_tail(job.log_path),
        )
