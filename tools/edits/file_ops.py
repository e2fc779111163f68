"""Every input shape (diff files, blocks) as one list of `FileOp`s, applied in order."""

from __future__ import annotations

from dataclasses import dataclass, field

from tools.edits.blocks import EditBlock, block_hunk
from tools.edits.patch_parse import FilePatch, Hunk


@dataclass
class FileOp:
    label: str  # how the input named it, for messages
    old_paths: tuple[str, ...]  # candidate spellings of the existing file, preferred first; () creates
    new_paths: tuple[str, ...]  # candidate spellings of the result; () deletes
    hunks: list[Hunk] = field(default_factory=list)
    content: str | None = None  # a whole-file write
    search: str | None = None  # a block's SEARCH text, tried as an exact substring first
    replace: str | None = None
    created: bool = False
    deleted: bool = False


def ops_from_patch(files: list[FilePatch]) -> list[FileOp]:
    return [
        FileOp(
            label=f.display_path,
            old_paths=() if f.created else f.old_paths,
            new_paths=() if f.deleted else f.new_paths,
            hunks=f.hunks,
            created=f.created,
            deleted=f.deleted,
        )
        for f in files
    ]


def ops_from_blocks(blocks: list[EditBlock]) -> list[FileOp]:
    ops = []
    for number, block in enumerate(blocks, start=1):
        label, path = f"{block.path} (block {number})", (block.path,)
        if block.delete:
            ops.append(FileOp(label, path, (), deleted=True))
        elif block.move_to is not None:
            ops.append(FileOp(label, path, (block.move_to,)))
        elif block.content is not None:
            ops.append(FileOp(label, (), path, content=block.content))
        else:
            assert block.search is not None and block.replace is not None
            if not block.search.strip():
                ops.append(FileOp(label, (), path, content=block.replace, created=True))
            else:
                hunk = block_hunk(block.search, block.replace, number)
                ops.append(FileOp(label, path, path, hunks=[hunk], search=block.search, replace=block.replace))
    return ops
