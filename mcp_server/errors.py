"""Errors of the server room, grouped by who reads them.

    ShipwayError
     ├── ConfigError            a configuration mistake; the server refuses to start
     ├── UserInputError         the caller (a model, a person at the CLI) can fix it; the
     │    │                     message says what failed and what to do instead
     │    ├── TaskNotFound
     │    ├── InvalidTransition
     │    └── RepoNotUsable
     └── StoreError             the task store failed (translated at the adapter, `from exc`)

Over MCP a UserInputError becomes an `isError` tool result carrying its message; anything
else is masked at the boundary and logged in full on the server. On the CLI every
ShipwayError is one line on stderr and a non-zero exit.
"""


class ShipwayError(Exception):
    """Base class for every error Shipway raises on purpose."""


class ConfigError(ShipwayError):
    """Settings are invalid or unsafe; raised before anything starts."""


class UserInputError(ShipwayError):
    """Bad input from the caller; nothing was changed."""


class TaskNotFound(UserInputError):
    """No task has this id (or the prefix is ambiguous)."""


class InvalidTransition(UserInputError):
    """The task's state machine does not allow this move; nothing was recorded."""


class RepoNotUsable(UserInputError):
    """The repository path is not a git working tree Shipway may work on."""


class StoreError(ShipwayError):
    """The task store could not complete an operation."""
