"""The task state machine: the legal moves succeed, every other move is refused."""

from __future__ import annotations

from collections import deque
from itertools import pairwise

import pytest

from mcp_server.errors import InvalidTransition
from mcp_server.tasks.machine import TERMINAL, TRANSITIONS, check_transition
from mcp_server.tasks.model import TaskState as S

ALL_PAIRS = [(a, b) for a in S for b in S]
LEGAL = [(a, b) for a, b in ALL_PAIRS if b in TRANSITIONS[a]]
ILLEGAL = [(a, b) for a, b in ALL_PAIRS if b not in TRANSITIONS[a]]

HAPPY_PATH = [
    S.REQUESTED, S.PLANNING, S.PLAN_REVIEW, S.CODING, S.TESTING,
    S.PR_OPEN, S.CI, S.REVIEW, S.APPROVED, S.MERGED,
]  # fmt: skip


def test_the_happy_path_from_request_to_merge_is_legal() -> None:
    for current, target in pairwise(HAPPY_PATH):
        check_transition("t", current, target)


@pytest.mark.parametrize(("current", "target"), LEGAL)
def test_legal_moves_pass(current: S, target: S) -> None:
    check_transition("t", current, target)


@pytest.mark.parametrize(("current", "target"), ILLEGAL)
def test_every_illegal_move_is_refused_with_a_message_naming_both_states(current: S, target: S) -> None:
    with pytest.raises(InvalidTransition) as info:
        check_transition("t", current, target)
    assert str(current) in str(info.value) and str(target) in str(info.value)


def test_illegal_moves_from_a_live_state_list_where_it_can_go() -> None:
    with pytest.raises(InvalidTransition, match="can move to: aborted, failed, planning"):
        check_transition("t", S.REQUESTED, S.CODING)


def test_terminal_states_have_no_way_out() -> None:
    assert {S.MERGED, S.REJECTED, S.FAILED, S.ABORTED} == TERMINAL
    for state in TERMINAL:
        assert TRANSITIONS[state] == frozenset()


def test_every_live_state_can_fail_or_be_aborted() -> None:
    for state in set(S) - TERMINAL:
        assert {S.FAILED, S.ABORTED} <= TRANSITIONS[state]


def test_review_loops_go_back_to_coding_or_end_in_a_rejection() -> None:
    assert S.NEEDS_CHANGES in TRANSITIONS[S.CI]
    assert S.NEEDS_CHANGES in TRANSITIONS[S.REVIEW]
    assert TRANSITIONS[S.NEEDS_CHANGES] - {S.FAILED, S.ABORTED} == {S.CODING, S.REJECTED}


def test_every_state_is_reachable_from_requested() -> None:
    seen, queue = {S.REQUESTED}, deque([S.REQUESTED])
    while queue:
        for nxt in TRANSITIONS[queue.popleft()] - seen:
            seen.add(nxt)
            queue.append(nxt)
    assert seen == set(S)


def test_merged_is_only_reachable_through_approval() -> None:
    assert [s for s in S if S.MERGED in TRANSITIONS[s]] == [S.APPROVED]
