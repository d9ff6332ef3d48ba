"""Routes over real sockets: a create fails over only when it certainly started no job."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from sora_tasks import (
    CircuitPolicy,
    CircuitState,
    PollingPolicy,
    PollSchedule,
    TaskManager,
    TaskStatus,
)
from sora_tasks.providers import (
    Backoff,
    OpenAIVideosProvider,
    ReplicateProvider,
    RunwayProvider,
    VeoProvider,
)
from sora_tasks.testing import create_simulator_app
from sora_tasks.testing._simulator import Faults, SimulatorApp
from sora_tasks.testing._simulator_asgi import ASGIApp, Receive, Scope, Send

pytestmark = pytest.mark.anyio

Serve = Callable[[ASGIApp], str]
KEY = "sk-simulated-key"
FAST = Backoff(initial=0.01, maximum=0.05)


@dataclass
class Refuser:
    """A provider that answers every request with one fixed error, and counts the requests."""

    status: int
    body: dict[str, object]
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    requests: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.requests += 1
        payload = json.dumps(self.body).encode()
        headers = [(b"content-type", b"application/json"), *self.headers]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


Build = Callable[[str, str], OpenAIVideosProvider]


@pytest.fixture
async def build() -> AsyncIterator[Build]:
    made: list[OpenAIVideosProvider] = []

    def make(base_url: str, name: str) -> OpenAIVideosProvider:
        provider = OpenAIVideosProvider(api_key=KEY, base_url=base_url, backoff=FAST, name=name)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


def manager(
    first: OpenAIVideosProvider, second: OpenAIVideosProvider, **options: object
) -> TaskManager:
    options.setdefault("policy", PollingPolicy(submit_uncertain="fail"))
    options.setdefault("poll", False)
    return TaskManager(
        providers={"first": first, "second": second},
        routes={"sora": ["first", "second"]},
        **options,  # type: ignore[arg-type]
    )


QUICK_POLLS = PollingPolicy(
    submit_uncertain="fail",
    idle_wait=0.05,
    schedule=PollSchedule(
        first_interval=0.05, dense_window=1.0, dense_interval=0.05, max_interval=0.2
    ),
)


def simulator(serve: Serve, **options: object) -> tuple[SimulatorApp, str]:
    app = create_simulator_app(**options)  # type: ignore[arg-type]
    return app, f"{serve(app)}/v1"


RETIRED = Refuser(
    410, {"error": {"code": "model_retired", "message": "sora-2 was retired on 2026-09-24"}}
)
RETIRED_IN_WORDS = Refuser(
    400, {"error": {"code": "invalid_request", "message": "The model sora-2 does not exist"}}
)
DID_NOTHING = Refuser(
    503, {"error": {"message": "overloaded; nothing was started"}}, [(b"retry-after", b"0")]
)


@pytest.mark.parametrize(
    ("refuser", "code"),
    [
        (None, "unreachable"),
        (DID_NOTHING, "unavailable"),
        (RETIRED, "retired"),
        (RETIRED_IN_WORDS, "retired"),
        (
            Refuser(429, {"error": {"message": "slow down"}}, [(b"retry-after", b"0")]),
            "rate_limited",
        ),
    ],
    ids=["connection-refused", "503-did-nothing", "410-retired", "retired-in-words", "429"],
)
async def test_a_create_that_certainly_started_nothing_goes_to_the_next_provider(
    serve: Serve, build: Build, refuser: Refuser | None, code: str
) -> None:
    first_url = closed_port_url() if refuser is None else f"{serve(refuser)}/v1"
    second_app, second_url = simulator(
        serve, render_seconds=0.2, queue_seconds=0.0, poll_after_ms=50
    )
    first, second = build(first_url, "first"), build(second_url, "second")
    async with manager(first, second, poll=True, policy=QUICK_POLLS) as tasks:
        task = await tasks.create("a calico cat", provider="sora", user_id="u1")
        done = await tasks.wait(task.id, timeout=20)
    assert done.status is TaskStatus.COMPLETED
    assert (done.provider, done.external_id) == ("second", task.external_id)
    assert task.provider == "second"
    assert task.external_id is not None
    assert task.route == "sora"
    assert [step.provider for step in task.route_steps] == ["first", "second"]
    assert [(s.provider, s.code) for s in task.skipped] == [("first", code)]
    assert second_app.state.creates == 1  # exactly one job, on the second provider


async def test_an_uncertain_create_never_fails_over(serve: Serve, build: Build) -> None:
    # a 500 on a create may follow a job that already started
    uncertain = Refuser(500, {"error": {"message": "internal error"}})
    second_app, second_url = simulator(serve)
    first = build(f"{serve(uncertain)}/v1", "first")
    async with manager(first, build(second_url, "second")) as tasks:
        task = await tasks.create("a calico cat", provider="sora")
    assert uncertain.requests == 1  # a create that may have started a job is not sent again
    assert task.provider == "first"
    assert task.status is TaskStatus.FAILED
    assert task.error is not None and task.error.code == "submit_uncertain"
    assert task.skipped == []
    assert [step.provider for step in task.route_steps] == ["first"]
    assert second_app.state.creates == 0


async def test_a_job_once_known_is_polled_where_it_was_created(serve: Serve, build: Build) -> None:
    first_app, first_url = simulator(serve, faults={"retrieve": Faults(server_errors=sys.maxsize)})
    second_app, second_url = simulator(serve)
    async with manager(build(first_url, "first"), build(second_url, "second")) as tasks:
        task = await tasks.create("a calico cat", provider="sora")
        assert task.provider == "first"
        refreshed = await tasks.refresh(task.id)
        stored = await tasks.get(task.id)
    assert refreshed.poll_failures == 1
    assert (stored.provider, stored.external_id) == ("first", task.external_id)
    assert first_app.state.creates == 1
    assert second_app.state.creates == 0


async def test_a_job_the_provider_fails_is_not_sent_elsewhere(serve: Serve, build: Build) -> None:
    first_app, first_url = simulator(
        serve, fail_prompts=["doomed"], render_seconds=0.0, queue_seconds=0.0
    )
    second_app, second_url = simulator(serve)
    async with manager(build(first_url, "first"), build(second_url, "second")) as tasks:
        task = await tasks.create("a doomed cat", provider="sora")
        for _ in range(50):
            task = await tasks.refresh(task.id)
            if task.is_terminal:
                break
    assert task.status is TaskStatus.FAILED
    assert task.provider == "first"
    assert first_app.state.creates == 1
    assert second_app.state.creates == 0


async def test_an_open_circuit_is_passed_over_without_a_call(serve: Serve, build: Build) -> None:
    refuser = Refuser(503, {"error": {"message": "down"}}, [(b"retry-after", b"0")])
    second_app, second_url = simulator(serve)
    first = build(f"{serve(refuser)}/v1", "first")
    circuit = CircuitPolicy(failure_threshold=1, open_seconds=600)
    async with manager(first, build(second_url, "second"), circuit=circuit) as tasks:
        await tasks.create("a calico cat", provider="sora")
        calls = refuser.requests
        assert tasks.provider_health()["first"].state is CircuitState.OPEN
        task = await tasks.create("a calico cat", provider="sora")
    assert refuser.requests == calls
    assert [(s.provider, s.code) for s in task.skipped] == [("first", "circuit_open")]
    assert task.provider == "second"
    assert second_app.state.creates == 2


async def test_the_end_of_the_route_leaves_the_task_to_try_again(
    serve: Serve, build: Build
) -> None:
    first, second = DID_NOTHING, Refuser(503, {"error": {}}, [(b"retry-after", b"0")])
    async with manager(
        build(f"{serve(first)}/v1", "first"), build(f"{serve(second)}/v1", "second")
    ) as tasks:
        task = await tasks.create("a calico cat", provider="sora")
    assert task.provider == "second"
    assert task.status is TaskStatus.QUEUED
    assert task.submission_id is None  # waiting to be sent again, later
    assert task.poll_failures == 1
    assert [(s.provider, s.code) for s in task.skipped] == [("first", "unavailable")]


async def test_veo_3_1_through_three_providers_lands_on_the_one_that_answers(
    serve: Serve,
) -> None:
    # Veo 3.1 directly (down), through Replicate (rate limited) and through Runway (up): each
    # provider gets the request as it takes it, and the task is priced where it lands
    app = create_simulator_app(
        api_key=KEY,
        queue_seconds=0,
        render_seconds=3600,
        faults={"replicate_create": Faults(rate_limits=sys.maxsize, retry_after=0)},
    )
    url = serve(app)
    providers = {
        "veo": VeoProvider(KEY, base_url=closed_port_url(), backoff=FAST),
        "replicate": ReplicateProvider(KEY, base_url=f"{url}/replicate/v1", backoff=FAST),
        "runway": RunwayProvider(KEY, base_url=f"{url}/runway/v1", backoff=FAST),
    }
    routes = {"veo-3.1": ["veo", "replicate:google/veo-3.1", "runway:veo3.1"]}
    async with TaskManager(providers=providers, routes=routes, poll=False) as manager:
        task = await manager.create("a calico cat", provider="veo-3.1", seconds=8)
    assert [(s.provider, s.code) for s in task.skipped] == [
        ("veo", "unreachable"),
        ("replicate", "rate_limited"),
    ]
    assert [(step.provider, step.model) for step in task.route_steps] == [
        ("veo", "veo-3.1-generate-preview"),
        ("replicate", "google/veo-3.1"),
        ("runway", "veo3.1"),
    ]
    assert (task.provider, task.model, task.external_id is not None) == ("runway", "veo3.1", True)
    assert len(app.state.records("runway_create")) == 1
    assert task.cost is not None and task.cost.amount == 3.2  # 8 s at Runway's 0.40 USD/s
    assert "runwayml/skills" in task.cost.source
