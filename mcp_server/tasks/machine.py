"""The task state machine: which move is legal from where.

requested -> planning -> plan_review -> coding -> testing -> pr_open -> ci -> review
          -> approved -> merged
plan_review -> planning (plan changes asked) | rejected
testing -> coding (tests fail, iterate)      ci -> needs_changes (CI red)
review -> needs_changes | rejected            approved -> needs_changes (approval lost)
needs_changes -> coding | rejected
any live state -> failed | aborted;  merged, rejected, failed, aborted are terminal.
"""

from __future__ import annotations

from mcp_server.errors import InvalidTransition
from mcp_server.tasks.model import TaskState as S

_FORWARD: dict[S, frozenset[S]] = {
    S.REQUESTED: frozenset({S.PLANNING}),
    S.PLANNING: frozenset({S.PLAN_REVIEW}),
    S.PLAN_REVIEW: frozenset({S.CODING, S.PLANNING, S.REJECTED}),
    S.CODING: frozenset({S.TESTING}),
    S.TESTING: frozenset({S.CODING, S.PR_OPEN}),
    S.PR_OPEN: frozenset({S.CI}),
    S.CI: frozenset({S.REVIEW, S.NEEDS_CHANGES}),
    S.REVIEW: frozenset({S.APPROVED, S.NEEDS_CHANGES, S.REJECTED}),
    S.APPROVED: frozenset({S.MERGED, S.NEEDS_CHANGES, S.REJECTED}),
    S.NEEDS_CHANGES: frozenset({S.CODING, S.REJECTED}),
}

TERMINAL: frozenset[S] = frozenset({S.MERGED, S.REJECTED, S.FAILED, S.ABORTED})

TRANSITIONS: dict[S, frozenset[S]] = {
    **{state: targets | {S.FAILED, S.ABORTED} for state, targets in _FORWARD.items()},
    **{state: frozenset() for state in TERMINAL},
}
assert set(TRANSITIONS) == set(S), "every state needs an entry"


def check_transition(task_id: str, current: S, target: S) -> None:
    """Raise InvalidTransition unless `current -> target` is a legal move."""
    if target in TRANSITIONS[current]:
        return
    if current in TERMINAL:
        raise InvalidTransition(f"task {task_id} is {current} (finished); it cannot move to {target}")
    allowed = ", ".join(sorted(TRANSITIONS[current]))
    raise InvalidTransition(
        f"task {task_id} is {current}; it cannot move to {target}. From {current} it can move to: {allowed}"
    )
