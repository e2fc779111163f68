"""`BubblewrapSandbox`: the default isolation, built from bubblewrap namespaces.

Inside, a command sees:
- the host's root filesystem read-only, except that home directories, /run (sockets such as
  docker.sock), /tmp, /var/tmp and every path in `Workspace.hidden` are empty; toolchains
  that live in a home directory and are on PATH (pyenv, rustup, cargo/bin, nvm, ...) are
  re-exposed read-only;
- its workspace directory writable, a private /tmp of bounded size, a minimal /dev, its own
  /proc;
- its own pid, ipc, uts, cgroup and network namespaces: only its own loopback, no route out;
- a new session (no terminal injection), death when Shipway dies, and nothing but an
  allowlisted environment.

When Shipway runs as root, bubblewrap builds the namespaces as root and `setpriv` then drops
the command to the workspace's unprivileged uid with no capabilities and no_new_privs. That
is what makes the process-count limit hold: RLIMIT_NPROC is not enforced for uid 0. Run as an
ordinary user, bubblewrap uses an unprivileged user namespace instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from sandbox.base import DEFAULT_LIMITS, ExecResult, Limits, NetworkPolicy, Workspace
from sandbox.errors import INSTALL_BUBBLEWRAP, SandboxUnavailable
from sandbox.process import prlimit_prefix, run_watched

HOME_ROOTS = (Path("/home"), Path("/root"))
OTHER_HIDDEN = (Path("/run"), Path("/var/tmp"))  # sockets such as docker.sock; shared temp files
SANDBOX_HOME = "/tmp/home"
DEFAULT_LANG = "C.UTF-8"

# Toolchain directories that may be re-exposed from a home directory when PATH uses them,
# mapped to the part that is safe to show (cargo keeps registry tokens beside its bin/).
TOOLCHAIN_DIRS = {
    ".pyenv": ".pyenv",
    ".rustup": ".rustup",
    ".cargo": ".cargo/bin",
    ".nvm": ".nvm",
    ".volta": ".volta",
    ".bun": ".bun/bin",
    ".deno": ".deno/bin",
    "go": "go/bin",
    ".local": ".local/bin",
}


def _under(path: Path, roots: Iterable[Path]) -> Path | None:
    for root in roots:
        if path == root or root in path.parents:
            return root
    return None


def home_dirs() -> tuple[Path, ...]:
    """Every home directory root, including this user's $HOME wherever it lives."""
    return (*HOME_ROOTS, Path.home().resolve())


def toolchain_paths(path_env: str) -> list[Path]:
    """Directories to re-expose so that PATH and this Python keep working inside the sandbox."""
    homes = home_dirs()
    found: list[Path] = []
    base = Path(sys.base_prefix).resolve()
    if _under(base, homes):
        found.append(base)
    for entry in path_env.split(os.pathsep):
        path = Path(entry)
        home = _under(path, homes) if path.is_absolute() else None
        if home is None or home == path:
            continue
        top = path.relative_to(home).parts[0]
        if top in TOOLCHAIN_DIRS:
            found.append(home / TOOLCHAIN_DIRS[top])
        if top == ".cargo":  # cargo/bin holds rustup proxies that need the toolchains
            found.append(home / ".rustup")
    return sorted({p for p in found if p.exists()})


def sandbox_path(path_env: str, exposed: Sequence[Path]) -> str:
    """PATH for the sandbox: host entries that stay visible, in their original order."""
    homes = home_dirs()
    keep = [
        entry
        for entry in path_env.split(os.pathsep)
        if entry and Path(entry).is_absolute() and (not _under(Path(entry), homes) or _under(Path(entry), exposed))
    ]
    return os.pathsep.join(dict.fromkeys(keep)) or "/usr/local/bin:/usr/bin:/bin"


def _dirs_between(hidden: Sequence[Path], target: Path) -> list[str]:
    """Directories bubblewrap must create, world-traversable, between the deepest hidden
    (emptied) root above `target` and `target` itself; bwrap would make them mode 0700.
    Plain string work: this runs for every mount of every command."""
    text = str(target)
    roots = [str(root) for root in hidden if text.startswith(str(root).rstrip("/") + "/")]
    if not roots:
        return []
    current = max(roots, key=len).rstrip("/")
    between = []
    for part in text[len(current) + 1 :].split("/")[:-1]:
        current = f"{current}/{part}"
        between.append(current)
    return between


def _namespace_init(info: int) -> int | None:
    """The host pid of the sandbox's pid 1, from what bwrap wrote to its --info-fd."""
    with os.fdopen(info, "rb") as reader:
        data = reader.read()
    try:
        return int(json.loads(data)["child-pid"])
    except (ValueError, KeyError, TypeError):
        return None  # bwrap died before it set the namespace up: nothing ran in it


def _wait_for_teardown(init_pid: int, deadline_s: float = 5.0) -> None:
    """Return once the namespace's pid 1 is a zombie or gone.

    bwrap reports the command's exit as soon as the command exits, while pid 1 is still
    killing what the command left behind. The kernel finishes that before pid 1 can become
    a zombie, so this is the moment no process of the sandbox is left."""
    status = Path(f"/proc/{init_pid}/status")
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if "\nState:\tZ" in status.read_text():
                return
        except OSError:
            return
        time.sleep(0.001)


def _count_processes(uid: int) -> int:
    count = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if f"\nUid:\t{uid}\t" in status.read_text():
                count += 1
        except OSError:
            continue
    return count


class BubblewrapSandbox:
    name = "bubblewrap"

    def __init__(self, bwrap: str | None = None) -> None:
        found = bwrap or shutil.which("bwrap")
        if found is None:
            raise SandboxUnavailable(INSTALL_BUBBLEWRAP)
        self.bwrap = found
        self.is_root = os.geteuid() == 0
        if self.is_root and shutil.which("setpriv") is None:
            raise SandboxUnavailable(
                "running as root needs util-linux `setpriv` to drop privileges; install util-linux"
            )
        host_path = os.environ.get("PATH", "/usr/bin:/bin")
        self.exposed = toolchain_paths(host_path)
        self.path = sandbox_path(host_path, self.exposed)

    @staticmethod
    def _make_parents(emptied: Sequence[Path], target: Path) -> list[str]:
        args: list[str] = []
        for directory in _dirs_between(emptied, target):
            args += ["--perms", "0755", "--dir", directory]
        return args

    def environment(self, workspace: Workspace) -> dict[str, str]:
        env = {
            "PATH": self.path,
            "HOME": SANDBOX_HOME,
            "TMPDIR": "/tmp",
            "LANG": os.environ.get("LANG", DEFAULT_LANG),
            "TERM": os.environ.get("TERM", "dumb"),
            "USER": "sandbox",
            "LOGNAME": "sandbox",
            "SHIPWAY_SANDBOX": "1",
            # The object store belongs to another uid; this is command-scope config, which
            # git honours for safe.directory (repository config could not set it).
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "safe.directory",
            "GIT_CONFIG_VALUE_0": "*",
        }
        rustup = next((p for p in self.exposed if p.name == ".rustup"), None)
        if rustup is not None:
            env["RUSTUP_HOME"] = str(rustup)
        return env | workspace.env

    def argv(self, command: Sequence[str], workspace: Workspace, limits: Limits, network: NetworkPolicy) -> list[str]:
        args = [self.bwrap, "--die-with-parent", "--new-session", "--unshare-ipc", "--unshare-pid"]
        args += ["--unshare-uts", "--unshare-cgroup-try"]
        if network != NetworkPolicy.OPEN:
            args += ["--unshare-net"]  # NONE and LOOPBACK alike
        if not self.is_root:
            args += ["--unshare-user"]
        args += ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
        args += ["--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
        emptied = [Path("/tmp")]
        hidden = sorted({*home_dirs(), *OTHER_HIDDEN, *workspace.hidden}, key=lambda p: len(p.parts))
        for path in hidden:
            args += [*self._make_parents(emptied, path), "--perms", "0755", "--tmpfs", str(path)]
            emptied.append(path)
        args += ["--perms", "0777", "--dir", SANDBOX_HOME]
        for path in self.exposed:
            args += [*self._make_parents(emptied, path), "--ro-bind", str(path), str(path)]
        # Writable binds first, so read-only binds may protect paths inside them (a checkout's .git).
        for extra in (workspace.workdir, *workspace.writable):
            args += [*self._make_parents(emptied, extra), "--bind", str(extra), str(extra)]
        for source, dest in (*workspace.readonly, *workspace.readonly_files):
            args += [*self._make_parents(emptied, dest), "--ro-bind", str(source), str(dest)]
        args += ["--chdir", str(workspace.workdir), "--clearenv"]
        for key, value in self.environment(workspace).items():
            args += ["--setenv", key, value]
        if self.is_root:
            uid = workspace.uid if workspace.uid is not None else 65534
            args += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs"]
            args += ["--inh-caps=-all", "--bounding-set=-all", "--"]
        return [*args, *command]

    def run(
        self,
        argv: Sequence[str],
        workspace: Workspace,
        limits: Limits = DEFAULT_LIMITS,
        network: NetworkPolicy = NetworkPolicy.NONE,
    ) -> ExecResult:
        # As root the command runs as its own uid, which owns no other process; as an ordinary
        # user RLIMIT_NPROC counts all of that user's processes, so the budget is on top of them.
        nproc = limits.processes if self.is_root else limits.processes + _count_processes(os.getuid())
        info_read, info_write = os.pipe()
        command = self.argv(argv, workspace, limits, network)
        command[1:1] = ["--info-fd", str(info_write)]
        full = prlimit_prefix(limits, nproc) + command
        # bwrap and everything before the command start with the same scrubbed environment.
        env = {"PATH": self.path, "LANG": DEFAULT_LANG}
        try:
            result = run_watched(
                full, env=env, cwd=Path("/"), limits=limits, disk_path=workspace.workdir, sandboxed=True,
                pass_fds=(info_write,),
            )  # fmt: skip
        except BaseException:
            for fd in (info_read, info_write):
                with contextlib.suppress(OSError):
                    os.close(fd)
            raise
        init_pid = _namespace_init(info_read)
        if init_pid is not None:
            _wait_for_teardown(init_pid)
        return result
