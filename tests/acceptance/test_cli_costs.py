"""The command line with routes, a price table of its own, budgets and the health command."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.test_cli import CANARY, CLI, CONFIG, clean_environment
from tests.acceptance.test_cli import simulator_url as simulator_url  # the fixture

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(120)]

# sora-2 at 0.25 USD/s on the provider named "sim": a 4-second task costs 1 USD
PRICES = (
    "provider,model,resolution,audio,per_second,per_job,currency,effective,source\n"
    "sim,sora-2,*,*,0.25,,USD,2026-01-01,our test contract\n"
)
TABLES = """
[routes]
"any-sora" = ["sim", "relay"]

[budgets]
overall = 1.5
window = "1d"
"""


@pytest.fixture
def priced(tmp_path: Path, simulator_url: str) -> CLI:
    (tmp_path / "prices.csv").write_text(PRICES)
    config = CONFIG.format(db=tmp_path / "tasks.db", url=simulator_url)
    # a top-level key goes before the first table
    (tmp_path / "sora-tasks.toml").write_text(f'prices = "prices.csv"\n{config}{TABLES}')
    return CLI(tmp_path, {**clean_environment(tmp_path), "SIM_KEY": CANARY})


def test_a_routed_submit_is_priced_and_the_budget_refuses_the_next(priced: CLI) -> None:
    task = priced("submit", "a cat", "--provider", "any-sora", "--seconds", "4", "--json").json()
    assert task["provider"] == "sim" and task["route"] == "any-sora"
    assert task["cost"]["amount"] == 1.0 and "our test contract" in task["cost"]["source"]
    refused = priced("submit", "a dog", "--provider", "any-sora", "--seconds", "4", expect=2)
    assert any("past the limit of 1.50 USD per 1 day" in line for line in refused.errors)
    stats = priced("stats", "--json").json()
    assert stats["total"] == 1 and stats["cost_total"] == {"USD": 1.0}
    assert stats["cost_by_provider"] == {"sim": {"USD": 1.0}}


def test_health_lists_the_circuits_and_the_routes(priced: CLI) -> None:
    health = priced("health", "--json").json()
    assert health["routes"] == {"any-sora": ["sim", "relay"]}
    assert health["providers"]["sim"]["state"] == "closed"
    text = priced("health").stdout
    assert "route any-sora" in text and "sim → relay" in text
