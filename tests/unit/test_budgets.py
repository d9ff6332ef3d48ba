"""Budgets on the in-memory store: limits per user and overall, windows, alerts, refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sora_tasks import (
    BudgetAlert,
    BudgetExceededError,
    BudgetLimit,
    Budgets,
    GenerationRequest,
    InvalidRequestError,
    PollingPolicy,
    PriceTable,
    ProviderRejectedError,
    TaskManager,
)
from sora_tasks.contrib.fastapi import error_response
from sora_tasks.storage import InMemoryStore
from sora_tasks.testing import FakeBehaviour, FakeProvider

pytestmark = pytest.mark.anyio

FAST = PollingPolicy(retry_interval=0.01, idle_wait=0.05, reconcile_delay=0)
SLOW = FakeBehaviour(render_for=3600, poll_after=60)
# 1 USD per 4-second task
PRICES = PriceTable.from_csv(
    "provider,model,resolution,audio,per_second,per_job,currency,effective,source\n"
    "fake,fake-video-1,*,*,0.25,,USD,2026-01-01,test\n"
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 30, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def manager(
    budgets: Budgets, fake: FakeProvider, clock: Clock | None = None, **options: object
) -> TaskManager:
    clock = clock or Clock()
    return TaskManager(
        providers={"fake": fake},
        store=InMemoryStore(clock=clock),
        clock=clock,
        prices=PRICES,
        budgets=budgets,
        policy=FAST,
        poll=False,
        **options,  # type: ignore[arg-type]
    )


async def test_a_user_over_their_limit_is_refused_and_nothing_is_stored_or_sent() -> None:
    fake = FakeProvider(behaviour=SLOW)
    budgets = Budgets(per_user=BudgetLimit(2.5))
    async with manager(budgets, fake) as tasks:
        for _ in range(2):
            await tasks.create("a cat", seconds=4, user_id="u1")
        with pytest.raises(BudgetExceededError) as caught:
            await tasks.create("a cat", seconds=4, user_id="u1")
        other = await tasks.create("a cat", seconds=4, user_id="u2")  # u2 has a limit of their own
        stats = await tasks.stats(user_id="u1")
    error = caught.value
    assert (error.limit, error.spent, error.estimate, error.user_id) == (2.5, 2.0, 1.0, "u1")
    assert error.field == "budget" and isinstance(error, InvalidRequestError)
    assert "limit of 2.50 USD per 1 day" in str(error) and "2.00 USD spent" in str(error)
    assert stats.total == 2 and stats.cost_total == {"USD": 2.0}
    assert len(fake.submissions) == 3 and other.user_id == "u2"


async def test_the_overall_limit_and_a_users_own_limit() -> None:
    fake = FakeProvider(behaviour=SLOW)
    budgets = Budgets(
        per_user=BudgetLimit(1), users={"vip": BudgetLimit(10)}, overall=BudgetLimit(3)
    )
    async with manager(budgets, fake) as tasks:
        await tasks.create("a cat", seconds=4, user_id="vip")
        await tasks.create("a cat", seconds=4, user_id="vip")
        with pytest.raises(BudgetExceededError, match="user 'u1'"):
            await tasks.create("a cat", seconds=8, user_id="u1")
        await tasks.create("a cat", seconds=4)  # no user: only the overall limit
        with pytest.raises(BudgetExceededError, match="all users together") as caught:
            await tasks.create("a cat", seconds=4, user_id="vip")
    assert caught.value.user_id is None and caught.value.spent == 3.0


async def test_spending_leaves_the_window_as_time_passes() -> None:
    clock = Clock()
    budgets = Budgets(overall=BudgetLimit(1, window=timedelta(hours=1)))
    async with manager(budgets, FakeProvider(behaviour=SLOW), clock) as tasks:
        await tasks.create("a cat", seconds=4)
        with pytest.raises(BudgetExceededError, match="per 1 hour"):
            await tasks.create("a cat", seconds=4)
        clock.now += timedelta(hours=1, seconds=1)
        await tasks.create("a cat", seconds=4)


async def test_a_create_that_started_no_job_gives_its_estimate_back() -> None:
    refused = FakeBehaviour(submit_error=ProviderRejectedError("no", status_code=400))
    budgets = Budgets(overall=BudgetLimit(1))
    async with manager(budgets, FakeProvider(behaviour=refused)) as tasks:
        first = await tasks.create("a cat", seconds=4)
        second = await tasks.create("a cat", seconds=4)
    assert first.cost is None and second.cost is None


async def test_passing_a_share_of_a_limit_alerts_once() -> None:
    seen: list[BudgetAlert] = []
    budgets = Budgets(per_user=BudgetLimit(4), alert_at=(0.5, 1.0))
    async with manager(budgets, FakeProvider(behaviour=SLOW), on_budget_alert=seen.append) as t:
        created = [await t.create("a cat", seconds=4, user_id="u1") for _ in range(4)]
    assert [(a.share, a.spent, a.user_id) for a in seen] == [(0.5, 2.0, "u1"), (1.0, 4.0, "u1")]
    assert seen[0].task_id == created[1].id and seen[0].limit == BudgetLimit(4)


async def test_a_model_without_a_price_cannot_be_budgeted() -> None:
    budgets = Budgets(overall=BudgetLimit(10))
    async with manager(budgets, FakeProvider(behaviour=SLOW)) as tasks:
        with pytest.raises(InvalidRequestError, match="no price is known for model 'sora-2'"):
            await tasks.create("a cat", model="sora-2")
        assert (await tasks.stats()).total == 0


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="positive amount"):
        BudgetLimit(0)
    with pytest.raises(ValueError, match="window must be positive"):
        BudgetLimit(1, window=timedelta(0))
    with pytest.raises(ValueError, match="alert_at"):
        Budgets(alert_at=(1.5,))


def test_rest_answers_a_budget_refusal_with_402() -> None:
    error = BudgetExceededError(
        "over", limit=5.0, spent=4.5, estimate=1.0, currency="USD", user_id="u1"
    )
    answer = error_response(error)
    assert answer is not None and answer.status_code == 402
    assert b'"code":"budget_exceeded"' in answer.body and b'"limit":5.0' in answer.body


async def test_a_batch_is_admitted_in_order_until_a_task_does_not_fit() -> None:
    fake = FakeProvider(behaviour=SLOW)
    async with manager(Budgets(overall=BudgetLimit(2)), fake) as tasks:
        batch = [GenerationRequest(prompt=f"cat {n}", seconds=4) for n in range(3)]
        with pytest.raises(BudgetExceededError, match=r"2\.00 USD spent"):
            await tasks.create_many(batch)
        admitted = await tasks.list()
    assert sorted(task.prompt for task in admitted.items) == ["cat 0", "cat 1"]
