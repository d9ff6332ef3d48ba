"""Routes, costs and budgets on each SQL store: the fields round-trip, the sums add up."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sora_tasks import (
    BudgetExceededError,
    BudgetLimit,
    RouteStep,
    SkippedProvider,
    TaskCost,
)
from sora_tasks._budgets import BudgetCheck
from sora_tasks.storage import SQLStore
from sora_tasks.testing._task_factories import make_task

pytestmark = pytest.mark.anyio


async def test_a_routed_task_moves_and_keeps_its_record(sql_store: SQLStore) -> None:
    now = await sql_store.now()
    steps = [
        RouteStep(provider="a", model="veo-3.1", size="1280x720", seconds=8),
        RouteStep(provider="b", model="fal-ai/veo3.1", size="1280x720", seconds=8),
    ]
    task = await sql_store.insert(make_task(now, provider="a", route="veo", route_steps=steps))
    skipped = [SkippedProvider(provider="a", code="unreachable", reason="refused", at=now)]
    moved = await sql_store.update(
        task.id, expected_version=task.version, provider="b", model="fal-ai/veo3.1",
        skipped=skipped,
    )  # fmt: skip
    cost = TaskCost(amount=3.2, estimated=True, source="price table")
    priced = await sql_store.update(task.id, cost=cost)
    stored = await sql_store.get(task.id)
    assert stored == priced
    assert (stored.provider, stored.model, stored.route) == ("b", "fal-ai/veo3.1", "veo")
    assert stored.route_steps == steps and stored.skipped == skipped == moved.skipped
    assert stored.cost == cost


async def test_cost_totals_match_the_sum_of_task_costs(sql_store: SQLStore) -> None:
    now = await sql_store.now()
    spread = [
        ("u1", "fal", "fal-ai/veo3.1", 3.2),
        ("u1", "fal", "fal-ai/veo3.1", 1.6),
        ("u2", "runway", "gen4.5", 0.6),
        (None, "runway", "veo3.1", 2.4),
    ]
    for user, provider, model, amount in spread:
        cost = TaskCost(amount=amount, source="test")
        await sql_store.insert(
            make_task(now, user_id=user, provider=provider, model=model, cost=cost)
        )
    await sql_store.insert(make_task(now, user_id="u1"))  # no price known: no cost
    stats = await sql_store.stats()
    assert stats.cost_total == {"USD": pytest.approx(sum(row[3] for row in spread))}
    assert stats.cost_by_user == {
        "": {"USD": pytest.approx(2.4)},
        "u1": {"USD": pytest.approx(4.8)},
        "u2": {"USD": pytest.approx(0.6)},
    }
    assert stats.cost_by_provider == {
        "fal": {"USD": pytest.approx(4.8)},
        "runway": {"USD": pytest.approx(3.0)},
    }
    assert set(stats.cost_by_model) == {"fal-ai/veo3.1", "gen4.5", "veo3.1"}
    mine = await sql_store.stats(user_id="u2")
    assert mine.cost_total == {"USD": pytest.approx(0.6)}


async def test_budget_checks_count_the_users_window_and_currency(sql_store: SQLStore) -> None:
    now = await sql_store.now()
    one = TaskCost(amount=1.0, source="test")
    old = make_task(now - timedelta(days=2), user_id="u1", cost=one)
    await sql_store.insert(old)  # outside the window
    await sql_store.insert(make_task(now, user_id="u2", cost=one))
    euro = TaskCost(amount=5.0, currency="EUR", source="test")
    await sql_store.insert(make_task(now, user_id="u1", cost=euro))  # another currency
    checks = [BudgetCheck("u1", BudgetLimit(2)), BudgetCheck(None, BudgetLimit(3))]
    spent = [
        await sql_store.insert_within_budget(make_task(now, user_id="u1", cost=one), checks=checks)
        for _ in range(2)
    ]
    assert spent == [[0.0, 1.0], [1.0, 2.0]]
    with pytest.raises(BudgetExceededError) as caught:
        await sql_store.insert_within_budget(make_task(now, user_id="u1", cost=one), checks=checks)
    assert (caught.value.user_id, caught.value.spent, caught.value.limit) == ("u1", 2.0, 2)
    assert (await sql_store.stats(user_id="u1")).total == 4  # the refused task was not stored
    theirs = [BudgetCheck("u3", BudgetLimit(2)), checks[1]]
    with pytest.raises(BudgetExceededError, match="all users together"):
        await sql_store.insert_within_budget(make_task(now, user_id="u3", cost=one), checks=theirs)
