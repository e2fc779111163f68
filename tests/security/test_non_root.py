"""The sandbox as a developer runs it: Shipway as an ordinary user, bubblewrap in a user namespace."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.helpers.gitrepo import init_repo

USER_UID = 4242
SYSTEM_PYTHON = "/usr/bin/python3"
DEPENDENCIES = ("pydantic", "pydantic_core", "typing_extensions", "annotated_types", "typing_inspection")


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None
    origin = Path(spec.origin)
    return origin.parent if origin.name == "__init__.py" else origin


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A scratch directory another user can reach (pytest's own are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="shipway-nonroot-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _same_python_minor() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    import sys

    out = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
    )
    return out.stdout.strip() == str(tuple(sys.version_info[:2]))


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
@pytest.mark.skipif(not _same_python_minor(), reason=f"{SYSTEM_PYTHON} of this Python version is not installed")
def test_as_an_ordinary_user_the_sandbox_isolates_and_limits_processes(shared_tmp: Path) -> None:
    tmp_path = shared_tmp
    # Everything the unprivileged user needs is copied where it can read it: our sandbox room,
    # the few packages it imports, a repository and a home directory with a canary.
    lib = tmp_path / "lib"
    shutil.copytree(REPO_ROOT / "sandbox", lib / "sandbox")
    for name in DEPENDENCIES:
        source = _package_dir(name)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, lib / source.name)
    shutil.copy(Path(__file__).with_name("non_root_probe.py"), lib / "probe.py")
    repo = init_repo(tmp_path / "repo")
    home = tmp_path / "home"
    home.mkdir()
    canary = home / "secret.txt"
    canary.write_text("user-canary\n", encoding="utf-8")
    as_root = os.geteuid() == 0
    if as_root:
        for dirpath, dirnames, filenames in os.walk(tmp_path):
            for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
                os.lchown(name, USER_UID, USER_UID)
        tmp_path.chmod(0o755)
        for parent in tmp_path.parents:
            if parent.stat().st_mode & 0o005 != 0o005:
                pytest.fail(f"{parent} is not traversable by other users; cannot act as an ordinary user here")
    switch = ["setpriv", f"--reuid={USER_UID}", f"--regid={USER_UID}", "--clear-groups"] if as_root else []
    env = {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": str(lib), "LANG": "C.UTF-8"}
    proc = subprocess.run(
        [*switch, SYSTEM_PYTHON, str(lib / "probe.py"), str(repo), str(canary)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["is_root"] is False
    probe = report["probe"].splitlines()
    assert probe[0] == str(report["uid"]) and probe[1] == "w"
    assert "user-canary" not in report["probe"] and "No such file" in probe[2]
    assert [line.split(":")[0].strip() for line in probe[3:]] == ["lo"]
    assert report["bomb"].startswith("stopped") and int(report["bomb"].split()[1]) < 50
