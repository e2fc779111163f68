"""Reading and writing files strictly inside one directory, all of an edit or none of it.

Paths are walked one component at a time from a descriptor of the root with O_NOFOLLOW, so a
symlink (even one a sandboxed command plants between our check and our write) can never
lead a read or a write outside the root. Symlinks inside the tree are refused as well: an
edit names the real file. `.git/` and `.shipway/` are off limits.

`commit` writes every new file to a temporary name beside its target first, then renames
them all into place; if anything fails, the originals are restored and created files and
directories removed, so the tree is as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tools.errors import ToolInputError

FORBIDDEN_DIRS = frozenset({".git", ".shipway"})
MAX_PATH_CHARS = 1024
DEFAULT_MODE = 0o644
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def check_path(path: str) -> str:
    """`path` as a clean repo-relative POSIX path, or ToolInputError saying what is wrong with it."""
    if not path or not path.strip():
        raise ToolInputError("a file path is empty; give a path relative to the repository root")
    if "\x00" in path or len(path) > MAX_PATH_CHARS:
        raise ToolInputError(f"path {path[:80]!r}… is not a usable path (NUL character or over {MAX_PATH_CHARS} chars)")
    if path.startswith(("/", "~")):
        raise ToolInputError(f"path {path!r} is absolute; give it relative to the repository root")
    parts = [part for part in PurePosixPath(path).parts if part != "."]
    if ".." in parts:
        raise ToolInputError(f"path {path!r} goes outside the repository ('..'); edits stay inside it")
    hidden = next((part for part in parts if part.lower() in FORBIDDEN_DIRS), None)
    if hidden:
        raise ToolInputError(f"path {path!r} is inside {hidden}/, which edits may not touch")
    if not parts:
        raise ToolInputError(f"path {path!r} names the repository root, not a file")
    return "/".join(parts)


@dataclass
class _Undo:
    created_files: list[tuple[int, str]] = field(default_factory=list)  # (dir fd, name)
    created_dirs: list[tuple[int, str]] = field(default_factory=list)
    restored: list[tuple[str, bytes, int]] = field(default_factory=list)  # (path, original bytes, mode)


class ConfinedDir:
    """Files under `root`, read and written without ever leaving it."""

    def __init__(self, root: Path, owner: tuple[int, int] | None = None, max_file_bytes: int = 2_000_000) -> None:
        self.root = root
        self.owner = owner  # uid, gid for files and directories this creates (root-run servers)
        self.max_file_bytes = max_file_bytes

    @contextlib.contextmanager
    def _parent(self, path: str, create: bool = False, undo: _Undo | None = None) -> Iterator[int | None]:
        """A descriptor of `path`'s directory (None if it does not exist and create is False)."""
        fds = [os.open(self.root, _DIR_FLAGS)]
        try:
            parts = path.split("/")
            for index, part in enumerate(parts[:-1]):
                fd = self._open_dir(fds[-1], part, "/".join(parts[: index + 1]), create, undo)
                if fd is None:
                    yield None
                    return
                fds.append(fd)
            yield fds[-1]
        finally:
            for fd in fds:
                os.close(fd)

    def _open_dir(self, parent: int, name: str, shown: str, create: bool, undo: _Undo | None) -> int | None:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                return None
            os.mkdir(name, 0o755, dir_fd=parent)
            if undo is not None:
                undo.created_dirs.append((os.dup(parent), name))
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
            if self.owner:
                os.fchown(fd, *self.owner)
            return fd
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise ToolInputError(f"{shown} is a symlink or a file, not a directory; edits never follow "
                                     "symlinks, so name the real path") from exc  # fmt: skip
            raise

    def _stat(self, parent: int, name: str, path: str) -> os.stat_result | None:
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            raise ToolInputError(f"{path} is a symlink; edits never follow symlinks, so edit the file it points to")
        if stat.S_ISDIR(st.st_mode):
            raise ToolInputError(f"{path} is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise ToolInputError(f"{path} is not a regular file")
        return st

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or None if it does not exist."""
        with self._parent(path) as parent:
            if parent is None:
                return None
            name = path.rsplit("/", 1)[-1]
            st = self._stat(parent, name, path)
            if st is None:
                return None
            if st.st_size > self.max_file_bytes:
                raise ToolInputError(
                    f"{path} is {st.st_size:,} bytes; the edit engine changes files up to {self.max_file_bytes:,} "
                    "bytes. Generate or edit it with a command instead"
                )
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            with os.fdopen(fd, "rb") as handle:
                return handle.read()

    def commit(self, changes: dict[str, bytes | None], originals: dict[str, bytes | None]) -> None:
        """Write (bytes) or delete (None) every path, or nothing if any step fails."""
        undo = _Undo()
        staged: list[tuple[str, str]] = []
        try:
            for path, data in changes.items():
                if data is not None:
                    staged.append((path, self._stage(path, data, undo)))
            for path, tmp in staged:
                self._swap(path, tmp, originals.get(path), undo)
            for path, data in changes.items():
                if data is None:
                    self._delete(path, originals[path], undo)
        except BaseException:
            self._rollback(undo)
            raise
        finally:
            for fd, _ in undo.created_files + undo.created_dirs:
                os.close(fd)

    def _stage(self, path: str, data: bytes, undo: _Undo) -> str:
        name = path.rsplit("/", 1)[-1]
        tmp = f".{name[:200]}.shipway-{secrets.token_hex(4)}"
        with self._parent(path, create=True, undo=undo) as parent:
            assert parent is not None
            st = self._stat(parent, name, path)
            mode = stat.S_IMODE(st.st_mode) if st else DEFAULT_MODE
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=parent)
            undo.created_files.append((os.dup(parent), tmp))
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), mode)
                owner = (st.st_uid, st.st_gid) if st else self.owner
                if owner and os.geteuid() == 0:
                    os.fchown(handle.fileno(), *owner)
                handle.write(data)
        return tmp

    def _swap(self, path: str, tmp: str, original: bytes | None, undo: _Undo) -> None:
        name = path.rsplit("/", 1)[-1]
        with self._parent(path) as parent:
            assert parent is not None
            st = self._stat(parent, name, path)
            os.replace(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
            undo.created_files = [(fd, n) for fd, n in undo.created_files if n != tmp]
            if st is None:
                undo.created_files.append((os.dup(parent), name))
            elif original is not None:
                undo.restored.append((path, original, stat.S_IMODE(st.st_mode)))

    def _delete(self, path: str, original: bytes | None, undo: _Undo) -> None:
        name = path.rsplit("/", 1)[-1]
        with self._parent(path) as parent:
            if parent is None:
                return
            st = self._stat(parent, name, path)
            if st is None:
                return
            os.unlink(name, dir_fd=parent)
            if original is not None:
                undo.restored.append((path, original, stat.S_IMODE(st.st_mode)))

    def _rollback(self, undo: _Undo) -> None:
        for fd, name in reversed(undo.created_files):
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=fd)
        for path, data, mode in reversed(undo.restored):
            with contextlib.suppress(OSError), self._parent(path, create=True) as parent:
                assert parent is not None
                name = path.rsplit("/", 1)[-1]
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode, dir_fd=parent)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
        for fd, name in reversed(undo.created_dirs):
            with contextlib.suppress(OSError):
                os.rmdir(name, dir_fd=fd)
