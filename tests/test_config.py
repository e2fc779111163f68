"""Settings: precedence, the untrusted repo file, exposure rules, and state kept out of git."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_server.app import open_deps
from mcp_server.config import load_settings
from mcp_server.errors import ConfigError
from mcp_server.tasks.model import Actor
from tests.helpers.gitrepo import git


def test_defaults_bind_loopback_and_keep_state_in_the_repo(repo: Path) -> None:
    settings = load_settings(repo=repo)
    assert (settings.host, settings.port, settings.toolset) == ("127.0.0.1", 8765, "agent")
    assert settings.state_path == repo.resolve() / ".shipway"


def test_a_subdirectory_resolves_to_the_repository_root(repo: Path) -> None:
    (repo / "src").mkdir()
    assert load_settings(repo=repo / "src").repo == repo.resolve()


def test_flags_beat_environment_which_beats_the_repo_file(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "shipway.toml").write_text('port = 9001\nbase_branch = "develop"\n', encoding="utf-8")
    assert load_settings(repo=repo).port == 9001
    monkeypatch.setenv("SHIPWAY_PORT", "9002")
    assert load_settings(repo=repo).port == 9002
    assert load_settings(repo=repo, port=9003).port == 9003
    assert load_settings(repo=repo).base_branch == "develop"


def test_the_repo_comes_from_the_environment_when_no_flag_names_it(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPWAY_REPO", str(repo))
    assert load_settings().repo == repo.resolve()


@pytest.mark.parametrize("key", ["host", "http_token", "state_dir", "extra_repos"])
def test_the_repo_file_may_not_widen_exposure(repo: Path, key: str) -> None:
    (repo / "shipway.toml").write_text(f'{key} = "0.0.0.0"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=f"may not set '{key}'.*SHIPWAY_{key.upper()}"):
        load_settings(repo=repo)


def test_unknown_and_malformed_repo_files_are_refused_clearly(repo: Path) -> None:
    (repo / "shipway.toml").write_text("colour = 'blue'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        load_settings(repo=repo)
    (repo / "shipway.toml").write_text("port = [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(repo=repo)


def test_binding_beyond_loopback_requires_a_long_enough_token(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="SHIPWAY_HTTP_TOKEN"):
        load_settings(repo=repo, host="0.0.0.0")
    monkeypatch.setenv("SHIPWAY_HTTP_TOKEN", "short")
    with pytest.raises(ConfigError, match="at least 16"):
        load_settings(repo=repo, host="0.0.0.0")
    monkeypatch.setenv("SHIPWAY_HTTP_TOKEN", "x" * 32)
    settings = load_settings(repo=repo, host="0.0.0.0")
    assert settings.http_token is not None and "x" * 32 not in repr(settings)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.5"])
def test_loopback_hosts_need_no_token(repo: Path, host: str) -> None:
    assert load_settings(repo=repo, host=host).host == host


def test_invalid_values_name_the_setting(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPWAY_PORT", "eighty")
    with pytest.raises(ConfigError, match="port"):
        load_settings(repo=repo)


def test_a_directory_that_is_not_a_git_repository_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not inside a git repository.*--repo"):
        load_settings(repo=tmp_path)
    assert not (tmp_path / ".shipway").exists()


def test_state_is_kept_out_of_git(repo: Path, alice: Actor) -> None:
    deps = open_deps(load_settings(repo=repo))
    deps.tasks.start("a change", actor=alice)
    assert (repo / ".shipway" / "tasks.db").exists()
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
