"""What a preview runs: the `[preview]` table of shipway.toml, else detection.

Detection looks at the previewed tree in a fixed order and takes the first that fits:
1. `package.json` with a `preview` script, then one with a `start` script (`npm run ...`);
2. a Python web app: `asgi.py`, `wsgi.py`, `app.py` or `main.py` defining `app` or
   `application` at top level, served by uvicorn (WSGI when the file looks like WSGI);
3. a static site: the first of `dist/`, `build/`, `public/`, `_site/`, `site/` or the tree's
   root that holds an `index.html`, served by Python's built-in HTTP server.

A served app must listen on 127.0.0.1 and the port in `$PORT` (8000 unless `[preview] port`
says otherwise). `[preview] build` runs before serving (and before an S3 upload), with no
network. An S3 preview uploads `[preview] output`, or the static directory detection finds.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from tools.errors import ToolInputError
from tools.repo_tables import read_table

DEFAULT_PORT = 8000
STATIC_DIRS = ("dist", "build", "public", "_site", "site", ".")
PYTHON_APPS = ("asgi.py", "wsgi.py", "app.py", "main.py")
_APP_NAME = re.compile(r"^(?:async\s+def\s+|def\s+)?(app|application)\s*[:=(]", re.MULTILINE)
_WSGI_HINTS = re.compile(r"\bdef\s+application\s*\(\s*environ|\bFlask\s*\(|\bwsgi\b|start_response", re.IGNORECASE)


class PreviewConfig(BaseModel):
    """The `[preview]` table of shipway.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str | None = Field(default=None, max_length=10_000, description="Shell command that serves on $PORT")
    port: int = Field(default=DEFAULT_PORT, ge=1024, le=65535, description="Port the command listens on")
    build: str | None = Field(default=None, max_length=10_000, description="Shell command run before serving")
    output: str | None = Field(default=None, max_length=500, description="Directory of static files (S3 target)")
    health_path: str = Field(default="/", max_length=500, pattern=r"^/[^\s]*$", description="Path that answers <500")


class ServePlan(BaseModel):
    """How a local preview serves: argv inside the sandbox, the port, and why this way."""

    model_config = ConfigDict(frozen=True)

    argv: list[str]
    port: int
    source: str = Field(description="What decided it: shipway.toml, package.json, app.py, dist/index.html...")
    shown: str = Field(description="The command as a person would type it")


def read_preview_config(text: str | None) -> PreviewConfig:
    """The `[preview]` table of a shipway.toml's text (defaults without one)."""
    return read_table(text, "preview", PreviewConfig)


def load_preview_config(tree: Path) -> PreviewConfig:
    path = tree / "shipway.toml"
    return read_preview_config(path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None)


def _inside(tree: Path, relative: str) -> Path | None:
    """`tree/relative` when it stays inside the tree (no `..`, no symlink out), else None."""
    candidate = (tree / relative).resolve()
    root = tree.resolve()
    return candidate if candidate == root or root in candidate.parents else None


def static_dir(tree: Path, config: PreviewConfig) -> Path | None:
    """The directory of static files: `[preview] output`, else the first of STATIC_DIRS with an index.html."""
    if config.output is not None:
        found = _inside(tree, config.output)
        if found is None:
            raise ToolInputError(f"shipway.toml [preview] output {config.output!r} points outside the repository")
        return found if found.is_dir() else None
    for name in STATIC_DIRS:
        found = _inside(tree, name)
        if found is not None and (found / "index.html").is_file():
            return found
    return None


def _npm_script(tree: Path) -> str | None:
    path = tree / "package.json"
    if not path.is_file():
        return None
    try:
        scripts = json.loads(path.read_text(encoding="utf-8")).get("scripts", {})
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None
    return next((name for name in ("preview", "start") if isinstance(scripts, dict) and scripts.get(name)), None)


def _python_app(tree: Path) -> tuple[str, bool] | None:
    """(module:attribute, is_wsgi) of the first Python web app found at the tree's root."""
    for name in PYTHON_APPS:
        path = tree / name
        if not path.is_file() or path.stat().st_size > 1_000_000:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found = _APP_NAME.search(text)
        if found:
            wsgi = name == "wsgi.py" or bool(_WSGI_HINTS.search(text))
            return f"{path.stem}:{found.group(1)}", wsgi
    return None


def serve_plan(tree: Path, config: PreviewConfig, python: str) -> ServePlan:
    """How to serve `tree`, or ToolInputError saying what to add to shipway.toml."""
    port = config.port
    if config.command:
        return ServePlan(argv=["/bin/sh", "-c", config.command], port=port, source="shipway.toml [preview] command",
                         shown=config.command)  # fmt: skip
    script = _npm_script(tree)
    if script:
        return ServePlan(argv=["npm", "run", script], port=port, source=f"package.json scripts.{script}",
                         shown=f"npm run {script}")  # fmt: skip
    app = _python_app(tree)
    if app:
        target, wsgi = app
        argv = [python, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
        if wsgi:
            argv += ["--interface", "wsgi"]
        return ServePlan(argv=argv, port=port, source=f"{target.split(':')[0]}.py defines {target.split(':')[1]}",
                         shown=shlex.join(["uvicorn", *argv[3:]]))  # fmt: skip
    site = static_dir(tree, config)
    if site is not None:
        argv = [python, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(site)]
        where = site.relative_to(tree.resolve()).as_posix() if site != tree.resolve() else "."
        return ServePlan(argv=argv, port=port, source=f"{where}/index.html (static site)",
                         shown=f"python -m http.server {port} --directory {where}")  # fmt: skip
    raise ToolInputError(
        "nothing to preview was found: no [preview] command in shipway.toml, no package.json preview/start script, "
        "no Python app (app.py/main.py/asgi.py/wsgi.py defining `app`), and no index.html in dist/, build/, public/, "
        '_site/, site/ or the root. Add `[preview]\\ncommand = "..."` (it must listen on 127.0.0.1:$PORT) to '
        "shipway.toml"
    )
