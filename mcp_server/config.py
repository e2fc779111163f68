"""Settings: command-line flags > `SHIPWAY_*` environment > the repo's `shipway.toml` > defaults.

`shipway.toml` is repository content, and repository content is untrusted (an agent can
edit it on a branch; a cloned repo can ship one). So the file may only set the keys in
`REPO_FILE_KEYS`; anything that widens what the server exposes or where it writes (host,
token, state directory, extra repositories) comes from flags or the environment only.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mcp_server.errors import ConfigError
from sandbox.host_git import NotAGitRepo, inspect_repo

REPO_FILE = "shipway.toml"
REPO_FILE_KEYS = frozenset({"base_branch", "port", "log_level"})
REPO_FILE_TABLES = frozenset({"test", "preview"})
"""Tables read by the tools themselves (tools/testrun/detect.py, tools/preview/detect.py), not by Settings."""
STATE_DIR_NAME = ".shipway"
MIN_TOKEN_CHARS = 16

Toolset = Literal["agent", "reviewer"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

_FULL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")

_repo_file_values: ContextVar[dict[str, Any] | None] = ContextVar("_repo_file_values", default=None)


class _RepoFileSource(PydanticBaseSettingsSource):
    """Lowest-priority source: the already-vetted keys of the repo's shipway.toml."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        values = _repo_file_values.get() or {}
        return {key: value for key, value in values.items() if key not in REPO_FILE_TABLES}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHIPWAY_", extra="forbid", validate_default=True)

    repo: Path = Field(description="Root of the git repository this server works on")
    state_dir: Path | None = Field(default=None, description="Where tasks live; default <repo>/.shipway")
    extra_repos: list[Path] = Field(default_factory=list, description="Other repositories start_task may name")
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    http_token: SecretStr | None = None
    toolset: Toolset = "agent"
    max_request_chars: int = Field(default=20_000, ge=1, le=1_000_000)
    base_branch: str | None = Field(default=None, description="Branch changes target; default the current one")
    log_level: LogLevel = "INFO"
    unsafe_no_sandbox: bool = Field(
        default=False, description="Run commands on the host without isolation (SHIPWAY_UNSAFE_NO_SANDBOX=1)"
    )
    command_timeout_s: float = Field(default=120.0, gt=0, le=1800, description="Default timeout of run_command")
    plan_conformance: Literal["enforce", "warn"] = Field(
        default="enforce",
        description="An edit touching files the approved plan does not list: refused (enforce) or logged (warn)",
    )
    test_timeout_s: float = Field(default=900.0, gt=0, le=7200, description="Time limit of one test run")
    test_setup_network: bool = Field(
        default=False, description="Let the test setup step (dependency install) use the network; tests never can"
    )
    test_python: str | None = Field(
        default=None, description="Python interpreter (of a virtualenv) that runs pytest; tried before detection"
    )
    merge_method: Literal["merge", "ff"] = Field(
        default="merge", description="Local forge: always a merge commit, or fast-forward when the base has not moved"
    )
    forge: Literal["local", "github"] = Field(
        default="local", description="Where pull requests live: branches in the repo itself, or GitHub"
    )
    github_repo: str | None = Field(default=None, description="owner/name of the GitHub repository (forge=github)")
    github_token: SecretStr | None = Field(default=None, description="Token that pushes and opens PRs (the agent)")
    github_api_url: str = Field(
        default="https://api.github.com", description="GitHub's REST API; https://HOST/api/v3 for GitHub Enterprise"
    )
    github_git_url: str | None = Field(default=None, description="Push URL; default derived from github_api_url")
    ci: Literal["auto", "local", "forge"] = Field(
        default="auto",
        description="Who judges CI: Shipway's sandboxed run, or the forge's checks (auto: the forge when it is GitHub)",
    )
    elicit_reviews: bool = Field(
        default=False, description="Serve ask_reviewer: the agent asks the client's user to decide (MCP elicitation)"
    )
    forbid_self_approval: bool = Field(
        default=False, description="The person who started a task may not approve its plan or PR"
    )
    plan_review: Literal["require", "auto"] = Field(
        default="require", description="Plans wait for a person (require), or are approved by policy (auto)"
    )
    model: str | None = Field(default=None, description="Chat model the agents use, e.g. gpt-4.1 or qwen2.5-coder")
    model_base_url: str | None = Field(
        default=None, description="OpenAI-compatible base URL (Ollama, vLLM, llama.cpp, Azure); default OpenAI's"
    )
    model_api_key: SecretStr | None = None
    model_timeout_s: float = Field(default=120.0, gt=0, le=3600, description="Time limit of one model call")
    model_max_retries: int = Field(default=3, ge=0, le=10, description="Retries on 429, 5xx and timeouts")
    model_script: Path | None = Field(
        default=None, description="Replay a ScriptedChatModel script instead of calling a model (tests, demo)"
    )
    model_script_per_task: bool = Field(
        default=False, description="Each task replays model_script from its own position (many tasks, one script)"
    )
    model_prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description='USD per million input and output tokens: {"model": [in, out]}'
    )
    agent_max_steps: int = Field(default=80, ge=1, le=10_000, description="Model calls per task")
    agent_max_wall_s: float = Field(default=3_600.0, gt=0, description="Seconds of agent work per task")
    agent_max_tokens: int = Field(default=2_000_000, ge=1, description="Tokens (input + output) per task")
    agent_max_cost_usd: float | None = Field(default=None, gt=0, description="USD per task (needs model_prices)")
    agent_ci_retries: int = Field(default=2, ge=0, le=20, description="Attempts to fix a red CI")
    agent_review_rounds: int = Field(default=3, ge=0, le=20, description="Rounds answering 'request changes'")
    agent_lease_s: float = Field(
        default=60.0,
        gt=0,
        le=3_600,
        description="A worker's hold on a task, renewed "
        "every third of it; a dead worker's task is taken over when it runs out",
    )
    agent_launch: Literal["spawn", "external"] = Field(
        default="spawn",
        description="Queued agent work: start a worker process (spawn), or leave it to `shipway worker`",
    )
    store: Literal["sqlite", "aws"] = Field(
        default="sqlite", description="Where tasks live: SQLite under the state directory, or DynamoDB (many workers)"
    )
    aws_table_prefix: str = Field(
        default="shipway",
        pattern=r"^[A-Za-z0-9_.-]{1,200}$",
        description="DynamoDB tables are <prefix>-tasks and <prefix>-events",
    )
    aws_endpoint_url: str | None = Field(default=None, description="DynamoDB-compatible endpoint; default AWS's")
    aws_region: str | None = Field(default=None, description="Default: boto3's (AWS_REGION, ~/.aws/config)")
    aws_artifacts_bucket: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="S3 bucket for what machines share: transcripts, task branches, diffs, test reports and logs",
    )
    aws_max_receives: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Deliveries of a task that never finishes before SQS moves it to the dead-letter queue",
    )
    preview_ttl_s: float = Field(
        default=3_600.0, gt=0, le=7 * 86_400, description="A preview is taken down this long after it starts"
    )
    preview_ready_timeout_s: float = Field(
        default=60.0, gt=0, le=1_800, description="Time a local preview has to answer its health check"
    )
    preview_build_timeout_s: float = Field(default=600.0, gt=0, le=3_600, description="Time limit of [preview] build")
    preview_approval: Literal["s3", "all", "none"] = Field(
        default="s3", description="Which previews wait for a person's approval: s3 (on AWS), all, or none"
    )
    preview_s3_bucket: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    preview_s3_prefix: str = Field(default="previews", pattern=r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
    preview_s3_endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint; default AWS's")
    preview_s3_region: str | None = Field(default=None, description="Default: boto3's (AWS_REGION, ~/.aws/config)")
    preview_s3_public_url: str | None = Field(default=None, description="Base URL reviewers open (website, CDN)")
    preview_s3_cloudformation: bool = Field(default=False, description="One CloudFormation stack (bucket) per preview")
    embedder: Literal["auto", "minilm", "openai", "none"] = Field(
        default="auto", description="Semantic search model; auto: the local MiniLM when installed, else none"
    )
    embeddings_url: str | None = Field(default=None, description="OpenAI-compatible base URL, e.g. .../v1")
    embeddings_model: str | None = Field(default=None, description="Model name for embeddings_url")
    embeddings_api_key: SecretStr | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _RepoFileSource(settings_cls))

    @model_validator(mode="after")
    def _exposure_needs_a_token(self) -> Settings:
        token = self.http_token.get_secret_value() if self.http_token else ""
        if self.http_token is not None and len(token) < MIN_TOKEN_CHARS:
            raise ValueError(f"SHIPWAY_HTTP_TOKEN must be at least {MIN_TOKEN_CHARS} characters")
        if not is_loopback(self.host) and not token:
            raise ValueError(
                f"binding {self.host} exposes the server beyond this machine; set SHIPWAY_HTTP_TOKEN "
                "(for example `export SHIPWAY_HTTP_TOKEN=$(openssl rand -hex 32)`) or bind 127.0.0.1"
            )
        return self

    @model_validator(mode="after")
    def _github_needs_its_settings(self) -> Settings:
        if self.forge == "github":
            missing = [f"SHIPWAY_{name.upper()}" for name in ("github_repo", "github_token") if not getattr(self, name)]
            if missing:
                raise ValueError(f"forge=github needs {' and '.join(missing)}")
            if not _FULL_NAME.match(self.github_repo or ""):
                raise ValueError(f"github_repo must look like owner/name, got {self.github_repo!r}")
        elif self.ci == "forge":
            raise ValueError("ci=forge needs a forge with CI of its own (SHIPWAY_FORGE=github)")
        for name in ("github_api_url", "github_git_url", "preview_s3_endpoint_url", "aws_endpoint_url"):
            url = getattr(self, name)
            if url and not _safe_url(url):
                raise ValueError(f"{name} must be an https:// URL (plain http only on loopback), got {url!r}")
        return self

    @model_validator(mode="after")
    def _preview_url_is_a_url(self) -> Settings:
        url = self.preview_s3_public_url
        if url and urlparse(url).scheme not in ("http", "https"):
            raise ValueError(f"preview_s3_public_url must be an http(s):// URL, got {url!r}")
        return self

    @model_validator(mode="after")
    def _model_key_travels_safely(self) -> Settings:
        if self.model_base_url and self.model_api_key and not _safe_url(self.model_base_url):
            raise ValueError(
                f"model_base_url must be https:// to carry SHIPWAY_MODEL_API_KEY (plain http only on loopback), "
                f"got {self.model_base_url!r}"
            )
        if self.agent_max_cost_usd is not None and self.model and self.model not in self.model_prices:
            raise ValueError(
                f"agent_max_cost_usd needs the price of {self.model!r}: set SHIPWAY_MODEL_PRICES, e.g. "
                f"'{{\"{self.model}\": [2.0, 8.0]}}' (USD per million input and output tokens)"
            )
        return self

    @property
    def agents_configured(self) -> bool:
        return bool(self.model or self.model_script)

    @property
    def forge_ci(self) -> bool:
        """Whether CI verdicts come from the forge's own checks rather than a sandboxed run here."""
        return self.ci == "forge" or (self.ci == "auto" and self.forge == "github")

    @property
    def state_path(self) -> Path:
        return self.state_dir if self.state_dir is not None else self.repo / STATE_DIR_NAME


def _safe_url(url: str) -> bool:
    """https, or plain http to this machine only (a token must not cross a network in clear)."""
    parsed = urlparse(url)
    return parsed.scheme == "https" or (parsed.scheme == "http" and is_loopback(parsed.hostname or ""))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_repo_root(path: Path) -> Path:
    """The root of the git working tree containing `path`, or a ConfigError saying how to fix it."""
    try:
        return inspect_repo(path.expanduser().resolve()).root
    except NotAGitRepo as exc:
        raise ConfigError(f"{exc}: run Shipway inside a git repository or pass --repo PATH") from exc


def read_repo_file(repo: Path) -> dict[str, Any]:
    """The keys of `<repo>/shipway.toml` that a repository may set, or a ConfigError."""
    path = repo / REPO_FILE
    if not path.is_file():
        return {}
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{REPO_FILE} is not valid TOML: {exc}") from exc
    for key in values:
        if key in REPO_FILE_KEYS or key in REPO_FILE_TABLES:
            continue
        if key in Settings.model_fields:
            env = f"SHIPWAY_{key.upper()}"
            raise ConfigError(f"{REPO_FILE} may not set {key!r}: repository files are untrusted; set {env} instead")
        allowed = ", ".join(sorted(REPO_FILE_KEYS | {f"[{t}]" for t in REPO_FILE_TABLES}))
        raise ConfigError(f"{REPO_FILE}: unknown key {key!r}; allowed: {allowed}")
    return values


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        message = err["msg"].removeprefix("Value error, ")
        parts.append(message if field == "settings" else f"{field}: {message}")
    return "invalid settings: " + "; ".join(parts)


def load_settings(**overrides: Any) -> Settings:
    """Settings for the repository named by `repo=`, `SHIPWAY_REPO` or the current directory."""
    given = {key: value for key, value in overrides.items() if value is not None}
    raw_repo = given.get("repo") or os.environ.get("SHIPWAY_REPO") or Path.cwd()
    given["repo"] = resolve_repo_root(Path(raw_repo))
    token = _repo_file_values.set(read_repo_file(given["repo"]))
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc
    finally:
        _repo_file_values.reset(token)


def ensure_state_dir(path: Path) -> Path:
    """Create the state directory; a `.gitignore` of `*` keeps all of it out of git."""
    path.mkdir(parents=True, exist_ok=True)
    ignore = path / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# Shipway's local state: never commit it.\n*\n", encoding="utf-8")
    return path
