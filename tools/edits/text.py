"""Files as lines: content without line endings, each line's own ending kept for a byte-exact round trip."""

from __future__ import annotations

from dataclasses import dataclass

from tools.errors import ToolInputError

BINARY_SNIFF_BYTES = 8_000


@dataclass(frozen=True)
class TextFile:
    lines: tuple[str, ...]  # without "\n" / "\r\n"
    eols: tuple[str, ...]  # "\n", "\r\n", or "" for a last line without a newline
    newline: str  # the file's usual ending, given to added lines
    encoding: str

    @classmethod
    def decode(cls, data: bytes, path: str) -> TextFile:
        if b"\x00" in data[:BINARY_SNIFF_BYTES]:
            raise ToolInputError(f"{path} is a binary file; the edit engine changes text files only")
        try:
            text, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = data.decode("latin-1"), "latin-1"
        return cls.from_text(text, encoding)

    @classmethod
    def from_text(cls, text: str, encoding: str = "utf-8") -> TextFile:
        parts = text.split("\n")
        last = parts.pop()  # "" when the text ends with a newline
        lines, eols = [], []
        for part in parts:
            crlf = part.endswith("\r")
            lines.append(part[:-1] if crlf else part)
            eols.append("\r\n" if crlf else "\n")
        if last:
            lines.append(last)
            eols.append("")
        crlf_count = eols.count("\r\n")
        newline = "\r\n" if crlf_count and crlf_count >= eols.count("\n") else "\n"
        return cls(tuple(lines), tuple(eols), newline, encoding)

    def encode(self, path: str) -> bytes:
        text = "".join(line + eol for line, eol in zip(self.lines, self.eols, strict=True))
        try:
            return text.encode(self.encoding)
        except UnicodeEncodeError as exc:
            raise ToolInputError(
                f"{path} is {self.encoding}-encoded and the edit adds characters that encoding cannot hold "
                f"({text[exc.start : exc.end]!r}); write them with ASCII escapes instead"
            ) from exc


def line_key(text: str) -> str:
    """What two lines must share to count as the same line: words, not whitespace."""
    return " ".join(text.replace("\ufeff", "").split())


def indent_of(text: str) -> str:
    return text[: len(text) - len(text.lstrip(" \t"))]
