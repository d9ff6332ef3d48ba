"""One process of the budget race: ``python -m tests.integration.budget_worker CONFIG_JSON``.

It waits for the shared start time, then makes ``creates`` creates at once on the shared store
under an overall budget, and prints how many were admitted and how many refused, as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import anyio

from sora_tasks import (
    BudgetExceededError,
    BudgetLimit,
    Budgets,
    PriceTable,
    TaskManager,
)
from sora_tasks.storage import SQLStore
from sora_tasks.testing import FakeBehaviour, FakeProvider

# 1 USD per 4-second task
PRICES = PriceTable.from_csv(
    "provider,model,resolution,audio,per_second,per_job,currency,effective,source\n"
    "fake,fake-video-1,*,*,0.25,,USD,2026-01-01,test\n"
)


async def race(config: dict[str, Any]) -> dict[str, int]:
    outcome = {"admitted": 0, "refused": 0}
    manager = TaskManager(
        providers={"fake": FakeProvider(behaviour=FakeBehaviour(render_for=3600))},
        store=SQLStore(config["url"]),
        prices=PRICES,
        budgets=Budgets(overall=BudgetLimit(float(config["limit"]))),
        poll=False,
    )
    async with manager:
        await manager.store.now()  # connected before the start: the creates race, not the logins

        async def create(index: int) -> None:
            try:
                await manager.create(f"cat {index}", seconds=4, user_id=f"u{index}")
            except BudgetExceededError:
                outcome["refused"] += 1
            else:
                outcome["admitted"] += 1

        await anyio.sleep(max(0.0, float(config["start_at"]) - time.time()))
        async with anyio.create_task_group() as group:
            for index in range(int(config["creates"])):
                group.start_soon(create, index)
    return outcome


if __name__ == "__main__":
    sys.stdout.write(json.dumps(anyio.run(race, json.loads(sys.argv[1]))) + "\n")
