"""Random sequences of writes: only legal transitions land, and ids stay one-to-one."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import anyio
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from sora_tasks import DuplicateExternalIdError, InvalidTransitionError, Task, TaskStatus
from sora_tasks._states import can_transition
from sora_tasks.storage import InMemoryStore

T = TypeVar("T")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def run(awaitable: Awaitable[T]) -> T:
    async def wrapper() -> T:
        return await awaitable

    return anyio.run(wrapper)


class StoreMachine(RuleBasedStateMachine):
    tasks = Bundle("tasks")

    def __init__(self) -> None:
        super().__init__()
        self.store = InMemoryStore(clock=lambda: NOW + timedelta(seconds=1))
        self.seen: dict[str, Task] = {}

    @rule(target=tasks, provider=st.sampled_from(["a", "b"]))
    def insert(self, provider: str) -> str:
        task = Task(
            provider=provider,
            prompt="p",
            model="m",
            size="1280x720",
            seconds=4,
            created_at=NOW,
            updated_at=NOW,
        )
        run(self.store.insert(task))
        self.seen[task.id] = task
        return task.id

    @rule(task_id=tasks, status=st.sampled_from(list(TaskStatus)))
    def move(self, task_id: str, status: TaskStatus) -> None:
        before = self.seen[task_id]
        try:
            after = run(self.store.update(task_id, status=status))
        except InvalidTransitionError:
            assert not can_transition(before.status, status)
            return
        assert can_transition(before.status, status)
        self.seen[task_id] = after

    @rule(task_id=tasks, progress=st.integers(min_value=-5, max_value=105))
    def progress(self, task_id: str, progress: int) -> None:
        before = self.seen[task_id]
        try:
            after = run(self.store.update(task_id, progress=progress))
        except InvalidTransitionError:
            return
        assert before.progress <= after.progress <= 100
        self.seen[task_id] = after

    @rule(task_id=tasks, external=st.sampled_from(["j1", "j2", "j3"]))
    def bind(self, task_id: str, external: str) -> None:
        with contextlib.suppress(DuplicateExternalIdError, InvalidTransitionError):
            self.seen[task_id] = run(self.store.update(task_id, external_id=external))

    @invariant()
    def stored_matches_seen(self) -> None:
        for task_id, task in self.seen.items():
            assert run(self.store.get(task_id)) == task

    @invariant()
    def ids_are_one_to_one(self) -> None:
        bound = [(t.provider, t.external_id) for t in self.seen.values() if t.external_id]
        assert len(bound) == len(set(bound))
        for provider, external in bound:
            found = run(self.store.get_by_external_id(external, provider=provider))
            assert (found.provider, found.external_id) == (provider, external)


StoreMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestStoreMachine = StoreMachine.TestCase
