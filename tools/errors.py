"""Errors of the tools room.

ToolInputError      the caller's input cannot be used; the message says what to change
"""

from __future__ import annotations


class ToolInputError(Exception):
    """Bad input to a tool; nothing was run or changed."""
