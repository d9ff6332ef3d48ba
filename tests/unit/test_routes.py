"""Routes on the fake provider: configuration errors, per-provider validation, caps, circuits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sora_tasks import (
    CircuitPolicy,
    CircuitState,
    InvalidRequestError,
    InvalidTransitionError,
    PollingPolicy,
    ProviderRejectedError,
    ProviderServerError,
    ProviderTransportError,
    RouteStep,
    SubmissionUncertainError,
    TaskManager,
    TaskStatus,
    UnknownProviderError,
    UnsupportedParameterError,
)
from sora_tasks._circuits import HealthBook
from sora_tasks._routes import refusal
from sora_tasks._states import apply
from sora_tasks.providers import ProviderCapabilities
from sora_tasks.storage import InMemoryStore
from sora_tasks.testing import FakeBehaviour, FakeProvider
from sora_tasks.testing._task_factories import make_task

pytestmark = pytest.mark.anyio

QUICK = FakeBehaviour(render_for=0.05, poll_after=0.01)
DOWN = FakeBehaviour(submit_error=ProviderTransportError("connection refused"))


def only(*, seconds: int, model: str = "veo-3.1", ratio: str = "16:9") -> ProviderCapabilities:
    return ProviderCapabilities(
        models=frozenset({model}),
        seconds=frozenset({seconds}),
        aspect_ratios=frozenset({ratio}),
        default_model=model,
        default_size="1280x720" if ratio == "16:9" else "720x1280",
        default_seconds=seconds,
    )


def test_a_route_naming_an_unknown_provider_fails_when_the_manager_is_built() -> None:
    with pytest.raises(UnknownProviderError, match="route 'veo' names provider 'nope'"):
        TaskManager(providers={"a": FakeProvider()}, routes={"veo": ["a", "nope"]})


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ({"veo": []}, "lists no provider"),
        ({"a": ["a"]}, "has the name of a provider"),
        ({"veo": ["a", "a"]}, "lists provider 'a' twice"),
        ({"veo": "a"}, "must list provider names"),
    ],
)
def test_malformed_routes_are_refused(routes: dict[str, list[str]], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        TaskManager(providers={"a": FakeProvider()}, routes=routes)


async def test_each_provider_gets_the_request_as_its_own_capabilities_take_it() -> None:
    four = FakeProvider(behaviour=DOWN, capabilities=only(seconds=4, model="veo-fast"))
    eight = FakeProvider(behaviour=QUICK, capabilities=only(seconds=8, model="google/veo-3.1"))
    routes = {"veo": ["four", "eight:google/veo-3.1"]}
    async with TaskManager(providers={"four": four, "eight": eight}, routes=routes) as manager:
        task = await manager.create("a cat", provider="veo")
    assert task.route_steps == [
        RouteStep(provider="four", model="veo-fast", size="1280x720", seconds=4,
                  aspect_ratio="16:9", resolution="720p"),
        RouteStep(provider="eight", model="google/veo-3.1", size="1280x720", seconds=8,
                  aspect_ratio="16:9", resolution="720p"),
    ]  # fmt: skip
    assert (task.provider, task.model, task.seconds) == ("eight", "google/veo-3.1", 8)
    assert [request.model for request in eight.submissions] == ["google/veo-3.1"]
    assert [request.seconds for request in four.submissions] == [4]


async def test_providers_that_cannot_take_the_request_are_skipped_and_said_so() -> None:
    tall = FakeProvider(behaviour=QUICK, capabilities=only(seconds=8, ratio="9:16"))
    wide = FakeProvider(behaviour=QUICK, capabilities=only(seconds=8))
    routes = {"veo": ["tall", "wide"]}
    async with TaskManager(providers={"tall": tall, "wide": wide}, routes=routes) as manager:
        task = await manager.create("a cat", provider="veo", aspect_ratio="16:9")
    assert task.provider == "wide"
    assert [step.provider for step in task.route_steps] == ["wide"]
    [skipped] = task.skipped
    assert (skipped.provider, skipped.code) == ("tall", "unsupported")
    assert "aspect_ratio '16:9' is not offered" in skipped.reason
    assert tall.submissions == []


async def test_a_route_whose_providers_all_refuse_lists_each_reason_and_stores_nothing() -> None:
    tall = FakeProvider(capabilities=only(seconds=8, ratio="9:16"))
    short = FakeProvider(capabilities=only(seconds=4))
    routes = {"veo": ["tall", "short"]}
    async with TaskManager(providers={"tall": tall, "short": short}, routes=routes) as manager:
        with pytest.raises(UnsupportedParameterError) as caught:
            await manager.create("a cat", provider="veo", aspect_ratio="16:9", seconds=8)
        assert (await manager.stats()).total == 0
    message = str(caught.value)
    assert "no provider of route 'veo'" in message
    assert "tall: aspect_ratio '16:9'" in message and "short: seconds 8" in message
    assert caught.value.limit == ["tall", "short"]


async def test_failing_over_to_a_capped_provider_leaves_the_task_to_its_queue() -> None:
    down = FakeProvider(behaviour=DOWN)
    capped = FakeProvider(behaviour=QUICK)
    policy = PollingPolicy(max_in_flight={"capped": 1}, idle_wait=0.05)
    manager = TaskManager(
        providers={"down": down, "capped": capped},
        routes={"fake": ["down", "capped"]},
        policy=policy,
        poll=False,
    )
    async with manager:
        task = await manager.create("a cat", provider="fake")
    assert (task.provider, task.submission_id, task.external_id) == ("capped", None, None)
    assert task.next_poll_at is not None
    assert capped.submissions == []  # the engine sends it, within the cap


def test_a_bound_task_never_moves_to_another_provider() -> None:
    now = datetime.now(UTC)
    task = make_task(now, provider="a", external_id="job_1")
    with pytest.raises(InvalidTransitionError, match="bound to a provider job"):
        apply(task, {"provider": "b"}, now=now)
    unbound = make_task(now, provider="a")
    assert apply(unbound, {"provider": "b"}, now=now).provider == "b"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ProviderTransportError("refused"), "unreachable"),
        (ProviderServerError("503", status_code=503), "unavailable"),
        (ProviderRejectedError("gone", status_code=410), "retired"),
        (ProviderRejectedError("x", status_code=404), "retired"),
        (ProviderRejectedError("this model is deprecated", status_code=400), "retired"),
        (ProviderRejectedError("bad prompt", status_code=400), None),
        (SubmissionUncertainError("maybe"), None),
    ],
)
def test_only_creates_that_certainly_started_nothing_are_refusals(
    error: ProviderRejectedError, code: str | None
) -> None:
    found = refusal(error)
    assert (found.code if found else None) == code


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_circuit_opens_after_failures_then_lets_one_probe_through() -> None:
    clock = Clock()
    book = HealthBook(["p"], CircuitPolicy(failure_threshold=2, open_seconds=10), clock=clock)
    error = ProviderTransportError("refused")
    book.record("p", error)
    assert book.state("p") is CircuitState.CLOSED and book.allow("p")
    book.record("p", error)
    assert book.state("p") is CircuitState.OPEN and not book.allow("p")
    assert book.snapshot()["p"].retry_in == 10
    clock.now = 10
    assert book.state("p") is CircuitState.HALF_OPEN
    assert book.allow("p")  # the probe
    assert not book.allow("p")  # only one at a time
    book.record("p", error)  # the probe failed: open again
    assert book.state("p") is CircuitState.OPEN
    clock.now = 20
    assert book.allow("p")
    book.record("p", None)
    assert book.state("p") is CircuitState.CLOSED
    assert book.snapshot()["p"].consecutive_failures == 0


def test_refusals_show_the_provider_up_and_a_lost_probe_is_replaced() -> None:
    clock = Clock()
    book = HealthBook(["p"], CircuitPolicy(failure_threshold=1, open_seconds=5), clock=clock)
    book.record("p", ProviderRejectedError("bad prompt", status_code=400))
    assert book.state("p") is CircuitState.CLOSED
    book.record("p", ProviderServerError("down", status_code=502))
    clock.now = 5
    assert book.allow("p")
    clock.now = 10  # the probe never reported
    assert book.allow("p")


def test_the_circuit_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="failure_threshold >= 1"):
        CircuitPolicy(failure_threshold=0)


async def test_a_route_may_be_the_default_provider() -> None:
    fake = FakeProvider(behaviour=QUICK)
    manager = TaskManager(
        providers={"a": fake}, routes={"r": ["a"]}, default_provider="r", poll=False
    )
    async with manager:
        task = await manager.create("a cat")
    assert (task.route, task.provider) == ("r", "a")


async def test_a_create_left_in_flight_by_a_dead_worker_pins_the_task_to_its_provider() -> None:
    now = datetime.now(UTC)
    steps = [
        RouteStep(provider=name, model="fake-video-1", size="1280x720", seconds=4)
        for name in ("a", "b")
    ]
    orphan = make_task(
        now - timedelta(minutes=5),
        provider="a",
        route="r",
        route_steps=steps,
        submission_id="sub_dead",
        next_poll_at=now - timedelta(minutes=1),
        deadline_at=now + timedelta(hours=1),
        lease_owner="dead-worker",
        lease_expires_at=now - timedelta(minutes=1),
    )
    store = InMemoryStore()
    await store.insert(orphan)
    a, b = FakeProvider(behaviour=DOWN), FakeProvider(behaviour=QUICK)
    policy = PollingPolicy(
        submit_uncertain="resubmit",
        reconcile_delay=0,
        reconcile_window=0,
        idle_wait=0.02,
        max_poll_failures=1,
    )
    routes = {"r": ["a", "b"]}
    async with TaskManager(
        providers={"a": a, "b": b}, store=store, routes=routes, policy=policy
    ) as m:
        done = await m.wait(orphan.id, timeout=10)
    assert done.status is TaskStatus.FAILED and done.provider == "a"
    assert [step.provider for step in done.route_steps] == ["a"]
    assert len(a.submissions) == 1 and b.submissions == []
