"""Which files the index reads, in which language, and which it skips with a reason."""

from __future__ import annotations

from pathlib import PurePosixPath

MAX_FILE_BYTES = 1_000_000  # generated tables, lock files and data dumps are larger than code
_SNIFF_BYTES = 8192
_MINIFIED_AVG_LINE = 300  # bundlers write a whole module on a handful of lines

LANGUAGES = {
    ".py": "python", ".pyi": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
    ".go": "go", ".java": "java", ".rs": "rust",
    ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".hpp": "cpp", ".cs": "csharp",
    ".rb": "ruby", ".php": "php", ".kt": "kotlin", ".swift": "swift", ".scala": "scala",
    ".sh": "shell", ".bash": "shell", ".sql": "sql", ".pyx": "cython",
    ".md": "markdown", ".rst": "rst", ".txt": "text", ".adoc": "asciidoc",
    ".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json", ".cfg": "ini", ".ini": "ini",
    ".html": "html", ".css": "css", ".xml": "xml",
}  # fmt: skip
CODE_LANGUAGES = frozenset(LANGUAGES.values()) - {
    "markdown", "rst", "text", "asciidoc", "toml", "yaml", "json", "ini", "html", "css", "xml",
}  # fmt: skip
DOC_LANGUAGES = frozenset({"markdown", "rst", "text", "asciidoc"})
_SPECIAL_NAMES = {"Makefile": "make", "Dockerfile": "docker", "README": "text", "LICENSE": "text"}

_VENDORED_DIRS = frozenset(
    {"node_modules", "vendor", "vendored", "third_party", "thirdparty", "bower_components", "site-packages",
     ".venv", "venv", "dist", "__pycache__", ".git", ".shipway", ".tox", ".mypy_cache"}
)  # fmt: skip
_TEST_DIRS = frozenset({"test", "tests", "testing", "__tests__", "spec", "specs"})


def language_of(path: str) -> str | None:
    pure = PurePosixPath(path)
    return LANGUAGES.get(pure.suffix.lower()) or _SPECIAL_NAMES.get(pure.name)


def skip_reason_for_path(path: str, size: int) -> str | None:
    """Why a file is not indexed, judged from its path and size alone, or None."""
    pure = PurePosixPath(path)
    if any(part in _VENDORED_DIRS for part in pure.parts[:-1]):
        return "vendored"
    name = pure.name.lower()
    if name.endswith((".min.js", ".min.css", ".bundle.js")) or name.endswith((".lock", "-lock.json")):
        return "generated"
    if language_of(path) is None:
        return "unsupported type"
    if size > MAX_FILE_BYTES:
        return "too large"
    return None


def is_binary(data: bytes) -> bool:
    """Git's own test: a NUL byte near the start."""
    return b"\0" in data[:_SNIFF_BYTES]


def skip_reason_for_content(data: bytes) -> str | None:
    """Why a file is not indexed, judged from its bytes, or None."""
    if is_binary(data):
        return "binary"
    lines = data.count(b"\n") + 1
    if len(data) > 2_000 and len(data) / lines > _MINIFIED_AVG_LINE:
        return "minified"
    return None


def decode(data: bytes) -> str:
    """Text of a file whatever its encoding: UTF-8 (with or without BOM), else Latin-1.

    Latin-1 maps every byte, so a file in a legacy encoding keeps its line structure and its
    ASCII identifiers, which is what the index needs from it.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def is_test_path(path: str) -> bool:
    pure = PurePosixPath(path)
    name = pure.name.lower()
    return (
        any(part.lower() in _TEST_DIRS for part in pure.parts[:-1])
        or name.startswith("test_")
        or name == "conftest.py"
        or pure.stem.lower().endswith(("_test", "_tests", ".test", ".spec", "_spec"))
        or pure.stem.endswith("Test")
    )


_SECONDARY_DIRS = frozenset({"doc", "docs", "documentation", "example", "examples", "benchmarks", "bench", "scripts"})


def is_secondary_path(path: str) -> bool:
    """Docs, examples, config and data: files a code change rarely has to touch first."""
    pure = PurePosixPath(path)
    if any(part.lower() in _SECONDARY_DIRS for part in pure.parts[:-1]):
        return True
    return language_of(path) not in CODE_LANGUAGES or pure.name in {"setup.py", "conftest.py", "noxfile.py"}
