"""The price table: shipped with dates and sources, refused line by line, extended; task costs."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from sora_tasks import (
    PollingPolicy,
    PriceTable,
    PriceTableError,
    ProviderRejectedError,
    ProviderTransportError,
    TaskManager,
    TaskStatus,
)
from sora_tasks._prices import provider_kind
from sora_tasks.providers import FalProvider, OpenAIVideosProvider, RunwayProvider, VeoProvider
from sora_tasks.testing import FakeBehaviour, FakeProvider

pytestmark = pytest.mark.anyio

HEADER = "provider,model,resolution,audio,per_second,per_job,currency,effective,source\n"
FAST = PollingPolicy(retry_interval=0.01, idle_wait=0.05, reconcile_delay=0)
QUICK = FakeBehaviour(render_for=0.05, poll_after=0.01)


def table(*lines: str) -> PriceTable:
    return PriceTable.from_csv(HEADER + "".join(f"{line}\n" for line in lines), name="t.csv")


def test_the_shipped_table_dates_and_sources_every_price() -> None:
    shipped = PriceTable.shipped()
    assert len(shipped) >= 20
    for price in shipped.prices:
        assert price.source and price.effective <= date(2026, 11, 30)
        assert (price.per_second or 0) > 0 or (price.per_job or 0) > 0
    fal = shipped.price_for(["fal"], "fal-ai/veo3.1", "1080p", True)
    assert fal is not None and fal.per_second == 0.40 and "fal.ai" in fal.source
    assert fal.amount(8) == 3.2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("fal,m,720p,true,-0.1,,USD,2026-01-01,x", "t.csv line 2: a price must be a finite"),
        ("fal,m,720p,true,,,USD,2026-01-01,x", "t.csv line 2: no price: give per_second"),
        ("fal,m,720p,true,abc,,USD,2026-01-01,x", "'abc' is not a price"),
        ("fal,m,720p,maybe,0.1,,USD,2026-01-01,x", "audio must be true, false or"),
        ("fal,m,720p,true,0.1,,USD,yesterday,x", "effective must be a date"),
        ("fal,m,720p,true,0.1,,USD,2026-01-01,", "source is missing"),
        ("fal,m,720p,true,0.1,,USD,2026-01-01", "8 values; an entry has 9"),
    ],
)
def test_a_bad_entry_is_refused_on_load_with_its_line(line: str, message: str) -> None:
    with pytest.raises(PriceTableError, match=message) as caught:
        table(line)
    assert caught.value.field == "prices"


def test_a_wrong_header_is_refused() -> None:
    with pytest.raises(PriceTableError, match="line 1: the header must name"):
        PriceTable.from_csv("provider,model,price\nfal,m,1\n")


def test_your_prices_override_and_extend_the_shipped_ones(tmp_path: Path) -> None:
    mine = tmp_path / "prices.csv"
    mine.write_text(HEADER + "fal,fal-ai/veo3.1,*,*,0.25,,USD,2026-11-30,our contract\n")
    merged = PriceTable.shipped().extended(PriceTable.load(str(mine)))
    # the most specific entry wins: the shipped 1080p/audio one over our wildcard
    exact = merged.price_for(["fal"], "fal-ai/veo3.1", "1080p", True)
    assert exact is not None and exact.per_second == 0.40
    other = merged.price_for(["fal"], "fal-ai/veo3.1", "720p", None)
    assert other is not None and other.per_second == 0.40  # audio unknown: the dearest
    override = PriceTable.shipped().extended(
        table("fal,fal-ai/veo3.1,1080p,true,0.30,,USD,2026-11-30,renegotiated")
    )
    renegotiated = override.price_for(["fal"], "fal-ai/veo3.1", "1080p", True)
    assert renegotiated is not None and renegotiated.per_second == 0.30


def test_a_providers_own_name_beats_its_kind_and_dates_pick_the_price() -> None:
    prices = table(
        "fal,m,*,*,0.10,,USD,2026-01-01,kind",
        "team-fal,m,*,*,0.05,,USD,2026-01-01,name",
        "fal,n,*,*,0.10,,USD,2026-01-01,old",
        "fal,n,*,*,0.20,,USD,2026-06-01,new",
    )

    def source(providers: list[str], model: str, on: date | None = None) -> str | None:
        found = prices.price_for(providers, model, None, None, on=on)
        return found.source if found is not None else None

    assert source(["team-fal", "fal"], "m") == "name"
    assert source(["fal"], "n", date(2026, 3, 1)) == "old"
    assert source(["fal"], "n") == "new"
    assert source(["fal"], "n", date(2025, 1, 1)) == "old"  # before any: the earliest known
    assert prices.price_for(["replicate"], "m", None, None) is None


def test_prices_by_the_job_by_the_second_and_by_compute_time_add_up() -> None:
    prices = PriceTable.from_csv(
        "per_compute_second,provider,model,resolution,audio,per_second,per_job,currency,"
        "effective,source\n"
        "0.01,replicate,owner/model,*,*,,0.5,USD,2026-01-01,hardware\n"
    )
    [price] = prices.prices
    assert price.amount(8, compute_seconds=100) == 1.5
    assert "0.5 USD per job + 0.01 USD/s of compute" in price.describe()
    both = table("fal,m,*,*,0.1,2,USD,2026-01-01,base fee").prices[0]
    assert both.amount(10) == 3.0


def test_adapter_kinds() -> None:
    assert provider_kind(FakeProvider()) == "fake"
    assert provider_kind(OpenAIVideosProvider(api_key="k")) == "openai"
    assert provider_kind(FalProvider(api_key="k")) == "fal"


PRICES = table(
    "fake,fake-video-1,*,*,0.5,,USD,2026-01-01,test price",
    "cheap,fake-video-1,*,*,0.1,,USD,2026-01-01,the cheap one",
)


async def test_a_task_is_estimated_at_creation_and_accounted_when_rendered() -> None:
    fake = FakeProvider(behaviour=QUICK)
    async with TaskManager(providers={"p": fake}, prices=PRICES, policy=FAST) as manager:
        task = await manager.create("a cat", seconds=8, user_id="u1")
        assert task.cost is not None
        assert (task.cost.amount, task.cost.estimated) == (4.0, True)
        assert "test price" in task.cost.source
        done = await manager.wait(task.id, timeout=10)
        other = await manager.create("a dog", seconds=4, user_id="u2")
        stats = await manager.stats()
    assert done.status is TaskStatus.COMPLETED
    assert done.cost is not None and (done.cost.amount, done.cost.estimated) == (4.0, False)
    assert done.cost.source.startswith("rendered: 8 s")
    assert stats.cost_total == {"USD": 6.0}
    assert stats.cost_by_user == {"u1": {"USD": 4.0}, "u2": {"USD": 2.0}}
    assert stats.cost_by_provider == {"p": {"USD": 6.0}}
    assert stats.cost_by_model == {"fake-video-1": {"USD": 6.0}}
    assert other.cost is not None


async def test_a_create_refused_for_good_owes_nothing() -> None:
    refusing = FakeBehaviour(submit_error=ProviderRejectedError("no", status_code=400))
    async with TaskManager(
        providers={"p": FakeProvider(behaviour=refusing)}, prices=PRICES, policy=FAST
    ) as manager:
        task = await manager.create("a cat")
        stats = await manager.stats()
    assert task.status is TaskStatus.FAILED
    assert task.cost is None
    assert stats.cost_total == {}


async def test_failing_over_prices_the_task_at_the_provider_that_takes_it() -> None:
    down = FakeProvider(behaviour=FakeBehaviour(submit_error=ProviderTransportError("refused")))
    cheap = FakeProvider(behaviour=QUICK)
    async with TaskManager(
        providers={"down": down, "cheap": cheap},
        routes={"r": ["down", "cheap"]},
        prices=PRICES,
        policy=FAST,
    ) as manager:
        task = await manager.create("a cat", provider="r", seconds=4)
    assert task.provider == "cheap"
    assert task.cost is not None and task.cost.amount == 0.4
    assert "the cheap one" in task.cost.source


def test_the_shipped_table_prices_the_first_party_adapters_default_models() -> None:
    shipped = PriceTable.shipped()
    for provider in (
        VeoProvider(api_key="k"),
        RunwayProvider(api_key="k"),
        FalProvider(api_key="k"),
    ):
        model = provider.capabilities.default_model
        price = shipped.price_for([provider_kind(provider)], model, None, None)
        assert price is not None, (provider_kind(provider), model)
