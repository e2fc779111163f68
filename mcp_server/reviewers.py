"""Reviewer identities: a name per person and a token they log in with.

`shipway reviewer add NAME` makes a random token, prints it once, and keeps only its sha256 in
`<state>/reviewers.json` (mode 0600). A token names exactly one reviewer; whoever holds it acts
as that person on the review page. Agents never get one: the page is the human side of the
gate, and every decision it takes is recorded as `human:NAME`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from mcp_server.errors import UserInputError

FILE_NAME = "reviewers.json"
TOKEN_PREFIX = "swr_"  # noqa: S105 - a marker that makes leaked tokens greppable, not a secret
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Reviewer(BaseModel):
    name: str
    token_sha256: str
    added_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class ReviewerStore:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILE_NAME

    def all(self) -> list[Reviewer]:
        if not self.path.is_file():
            return []
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return [Reviewer.model_validate(item) for item in raw]
        except (ValueError, TypeError) as exc:
            raise UserInputError(f"{self.path} is damaged ({exc}); remove it and add the reviewers again") from exc

    def _save(self, reviewers: list[Reviewer]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump([r.model_dump(mode="json") for r in reviewers], handle, indent=2)
        os.replace(tmp, self.path)

    def add(self, name: str) -> str:
        """Add (or re-key) a reviewer; returns the new token, which is stored nowhere in clear."""
        if not _NAME.match(name):
            raise UserInputError(f"a reviewer name is 1-64 letters, digits, '.', '_' or '-', got {name!r}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        others = [r for r in self.all() if r.name != name]
        self._save([*others, Reviewer(name=name, token_sha256=_digest(token), added_at=datetime.now(UTC))])
        return token

    def remove(self, name: str) -> None:
        reviewers = self.all()
        if not any(r.name == name for r in reviewers):
            raise UserInputError(f"no reviewer named {name!r}; `shipway reviewer list` shows them")
        self._save([r for r in reviewers if r.name != name])

    def verify(self, token: str) -> Reviewer | None:
        """The reviewer this token belongs to, compared in constant time, or None."""
        if not token or len(token) > 200:
            return None
        digest = _digest(token)
        found = None
        for reviewer in self.all():
            if hmac.compare_digest(digest, reviewer.token_sha256):
                found = reviewer
        return found
