"""The edit engine: apply what a model meant to write, or refuse and say exactly why.

Input comes in three shapes, all turned into the same `FileOp`s: unified diffs as models
write them (`patch_parse`), SEARCH/REPLACE blocks and whole-file writes (`blocks`). Each
hunk is placed against the original file by `locate` (exact, then whitespace- and
indentation-insensitive, then a bounded alignment in `alignment`), the whole edit is planned
in memory (`engine`), and only then written, all files or none (`confined`).
"""
