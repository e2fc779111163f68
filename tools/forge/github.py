"""`GitHubForge`: the task branch pushed to GitHub (or GitHub Enterprise), a pull request there.

- Push: GitPython runs `git push` of the task branch over HTTPS. The token travels in an
  `http.extraHeader` set through `GIT_CONFIG_*` variables, so it is never on a command line,
  in a remote URL, or in any git config file; credential helpers and askpass are switched off.
- Pull requests, reviews, comments, combined status, check runs and merging: PyGithub.
  A PR opens as a draft; `ready` takes it out of draft once CI is green.
- Conflicts: the base branch is fetched into `refs/shipway/remote/<base>` and merged in memory
  with `git merge-tree`, so a reviewer sees the conflicting files, not only "not mergeable".
- Identity: the account behind the token is the agent's. Its own reviews are marked `by_bot`,
  and the gate never counts them (GitHub itself forbids approving your own PR, too).

Every message that leaves this module is scrubbed of the token.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import git
from github import Auth, Github, GithubException
from github.CheckRun import CheckRun
from github.CommitStatus import CommitStatus
from github.PullRequest import PullRequest as GHPull
from github.PullRequestReview import PullRequestReview
from github.Repository import Repository

from sandbox.host_git import HARDENING, GitError, git_env, run_git
from tools.forge.base import (
    Check,
    ChecksState,
    ForgeChecks,
    ForgeReview,
    ForgeUnavailable,
    Merged,
    MergeRefused,
    Published,
    combine,
)
from tools.forge.local import merge_tree

PUSH_TIMEOUT_S = 300
REMOTE_REF = "refs/shipway/remote/"
_STATUS = {"success": "success", "failure": "failure", "error": "failure", "pending": "pending"}
_CONCLUSION = {"success": "success", "neutral": "success", "skipped": "success", "failure": "failure",
               "cancelled": "failure", "timed_out": "failure", "action_required": "failure",
               "startup_failure": "failure", "stale": "pending"}  # fmt: skip


def git_url_for(api_url: str, full_name: str) -> str:
    """Where git pushes: github.com for the public API, else the API host (GitHub Enterprise)."""
    parsed = urlparse(api_url)
    host = "github.com" if parsed.hostname == "api.github.com" else parsed.netloc
    return f"{parsed.scheme}://{host}/{full_name}.git"


class GitHubForge:
    name = "github"

    def __init__(self, repo: Path, full_name: str, token: str, api_url: str = "https://api.github.com",
                 git_url: str | None = None, client: Callable[[], Github] | None = None) -> None:  # fmt: skip
        self.repo = repo
        self.full_name = full_name
        self.api_url = api_url.rstrip("/")
        self.git_url = git_url or git_url_for(self.api_url, full_name)
        self._token = token
        self._client = client or self._default_client
        self._gh: Github | None = None
        self._repo_api: Repository | None = None
        self._login: str | None = None

    # -- plumbing

    def _default_client(self) -> Github:
        return Github(base_url=self.api_url, auth=Auth.Token(self._token), retry=None, timeout=30,
                      seconds_between_requests=0, seconds_between_writes=0)  # fmt: skip

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    @contextmanager
    def _api(self, doing: str) -> Iterator[None]:
        """Turn GitHub and network errors into a ForgeUnavailable that says what failed."""
        try:
            yield
        except GithubException as exc:
            message = exc.data.get("message") if isinstance(exc.data, dict) else None
            hint = {401: "the token was refused: check SHIPWAY_GITHUB_TOKEN",
                    403: "the token lacks a permission (contents, pull requests, statuses: read/write)",
                    404: f"{self.full_name} was not found, or the token cannot see it"}.get(exc.status, "")  # fmt: skip
            detail = "; ".join(part for part in (str(message or exc.status), hint) if part)
            raise ForgeUnavailable(self._scrub(f"GitHub refused to {doing}: {detail}")) from exc
        except OSError as exc:  # connection refused, DNS, TLS, timeouts (requests' errors are OSErrors)
            raise ForgeUnavailable(self._scrub(f"GitHub could not be reached to {doing}: {exc}")) from exc

    def _repository(self) -> Repository:
        if self._repo_api is None:
            with self._api(f"open {self.full_name}"):
                self._gh = self._client()
                self._repo_api = self._gh.get_repo(self.full_name)
        return self._repo_api

    def agent_login(self) -> str:
        """The account the token belongs to: everything it does is the agent's doing."""
        if self._login is None:
            self._repository()
            assert self._gh is not None
            with self._api("identify the token's account"):
                self._login = self._gh.get_user().login
        return self._login

    def _pull(self, head_branch: str, state: str = "open") -> GHPull | None:
        repo = self._repository()
        owner = self.full_name.split("/")[0]
        with self._api(f"look up the pull request for {head_branch}"):
            pulls = list(repo.get_pulls(state=state, head=f"{owner}:{head_branch}"))
        return pulls[0] if pulls else None

    def _git_env(self) -> dict[str, str]:
        basic = base64.b64encode(f"x-access-token:{self._token}".encode()).decode()
        env = git_env()
        env.update(GIT_ASKPASS="", SSH_ASKPASS="", GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_COUNT="2",
                   GIT_CONFIG_KEY_0="http.extraHeader", GIT_CONFIG_VALUE_0=f"Authorization: Basic {basic}",
                   GIT_CONFIG_KEY_1="credential.helper", GIT_CONFIG_VALUE_1="")  # fmt: skip
        return env

    def _git_remote(self, *args: str) -> str:
        """Run a git command that talks to the remote, authenticated, through GitPython."""
        argv = ["git", *HARDENING, "-C", str(self.repo), *args]
        runner = git.Git(str(self.repo))
        status, out, err = runner.execute(argv, env=self._git_env(), with_extended_output=True,
                                          with_exceptions=False, kill_after_timeout=PUSH_TIMEOUT_S)  # fmt: skip
        if status != 0:
            lines = [line for line in str(err).strip().splitlines() if line.strip()]
            raise ForgeUnavailable(self._scrub(f"git {args[0]} to {self.git_url} failed: "
                                               f"{' '.join(lines[-2:])[:400] or f'exit {status}'}"))  # fmt: skip
        return str(out)

    # -- the Forge port

    def push(self, head_branch: str) -> None:
        ref = f"refs/heads/{head_branch}"
        self._git_remote("push", "--quiet", "--force", self.git_url, f"{ref}:{ref}")

    def conflicts(self, base_branch: str, head_sha: str) -> list[str]:
        self._git_remote("fetch", "--quiet", "--no-tags", self.git_url,
                         f"+refs/heads/{base_branch}:{REMOTE_REF}{base_branch}")  # fmt: skip
        try:
            base = run_git(self.repo, "rev-parse", "--verify", f"{REMOTE_REF}{base_branch}^{{commit}}").stdout.strip()
        except GitError as exc:
            raise MergeRefused(f"{base_branch} was not fetched from {self.full_name}: {exc}") from exc
        return merge_tree(self.repo, base, head_sha)[1]

    def publish(self, task_id: str, head_branch: str, base_branch: str, title: str, body: str) -> Published:
        self.push(head_branch)
        pull = self._pull(head_branch)
        with self._api(f"open the pull request for {head_branch}"):
            if pull is None:
                pull = self._repository().create_pull(title=title, body=body, base=base_branch, head=head_branch,
                                                      draft=True)  # fmt: skip
            else:
                pull.edit(title=title, body=body)
        return Published(number=pull.number, url=pull.html_url, draft=bool(pull.draft))

    def merge(self, head_branch: str, base_branch: str, head_sha: str, message: str) -> Merged:
        pull = self._pull(head_branch)
        if pull is None:
            raise MergeRefused(f"there is no open pull request for {head_branch} on {self.full_name}")
        if pull.draft:
            self.ready(head_branch)
        try:
            status = pull.merge(commit_title=message, merge_method="merge", sha=head_sha)
        except GithubException as exc:
            reason = exc.data.get("message") if isinstance(exc.data, dict) else str(exc.status)
            raise MergeRefused(self._scrub(f"GitHub would not merge #{pull.number}: {reason}")) from exc
        except OSError as exc:
            raise ForgeUnavailable(self._scrub(f"GitHub could not be reached to merge: {exc}")) from exc
        if not status.merged:
            raise MergeRefused(self._scrub(f"GitHub would not merge #{pull.number}: {status.message}"))
        return Merged(commit=status.sha, method="merge commit on GitHub")

    def reviews(self, head_branch: str) -> list[ForgeReview]:
        pull = self._pull(head_branch)
        if pull is None:
            return []
        me = self.agent_login()
        with self._api(f"read the reviews of #{pull.number}"):
            return [_review(r, me) for r in pull.get_reviews() if r.user is not None]

    def checks(self, head_sha: str) -> ForgeChecks:
        repo = self._repository()
        with self._api(f"read the checks of {head_sha[:12]}"):
            commit = repo.get_commit(head_sha)
            found = [_status_check(s) for s in commit.get_combined_status().statuses]
            found += [_run_check(run) for run in commit.get_check_runs()]
        return combine(head_sha, found)

    def comment(self, head_branch: str, text: str) -> None:
        pull = self._pull(head_branch)
        if pull is not None:
            with self._api(f"comment on #{pull.number}"):
                pull.create_issue_comment(text)

    def ready(self, head_branch: str) -> None:
        pull = self._pull(head_branch)
        if pull is not None and pull.draft:
            with self._api(f"mark #{pull.number} ready for review"):
                pull.mark_ready_for_review()

    def close(self, head_branch: str) -> None:
        pull = self._pull(head_branch)
        if pull is not None:
            with self._api(f"close #{pull.number}"):
                pull.edit(state="closed")


def _review(review: PullRequestReview, me: str) -> ForgeReview:
    user = review.user
    return ForgeReview(id=str(review.id), login=user.login, state=review.state, commit=review.commit_id,  # type: ignore[arg-type]
                       body=review.body or "", at=review.submitted_at,
                       by_bot=user.login == me or user.type == "Bot")  # fmt: skip


def _status_check(status: CommitStatus) -> Check:
    state: ChecksState = _STATUS.get(status.state, "pending")  # type: ignore[assignment]
    return Check(name=status.context, state=state, url=status.target_url, detail=status.description or "")


def _run_check(run: CheckRun) -> Check:
    done = run.status == "completed"
    state: ChecksState = _CONCLUSION.get(run.conclusion or "", "failure") if done else "pending"  # type: ignore[assignment]
    return Check(name=run.name, state=state, url=run.html_url, detail=run.conclusion or run.status)
