"""Every shipped adapter passes the provider conformance kit, and so does the fake.

The OpenAI Videos and relay adapters run it against the shipped simulator over a real socket;
``FakeProvider`` runs it in process, scripted through its behaviour API.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterator, Mapping

import pytest

from sora_tasks import TaskError
from sora_tasks.providers import Provider
from sora_tasks.testing import (
    FakeBehaviour,
    FakeProvider,
    Faults,
    Feature,
    OpenAISimulatorHarness,
    Operation,
    Phase,
    Pin,
    ProviderHarness,
    Received,
    RelaySimulatorHarness,
    sample_video,
)
from sora_tasks.testing.conformance import ProviderConformance

# a render long enough that a job pinned at a percentage stays there for the whole check
_RENDER = 1e6


class TestOpenAIVideosConformance(ProviderConformance):
    @pytest.fixture
    def harness(self) -> Iterator[ProviderHarness]:
        with OpenAISimulatorHarness.serve() as harness:
            yield harness


class TestRelayConformance(ProviderConformance):
    @pytest.fixture
    def harness(self) -> Iterator[ProviderHarness]:
        with RelaySimulatorHarness.serve() as harness:
            yield harness


class FakeHarness(ProviderHarness):
    """``FakeProvider`` under the kit: no HTTP, every state scripted as a behaviour."""

    status_words: Mapping[str, Phase] = {
        "queued": "queued",
        "in_progress": "in_progress",
        "completed": "completed",
        "failed": "failed",
        "cancelled": "cancelled",
    }
    features: frozenset[Feature] = frozenset(
        {"cancel", "progress", "poll_after", "expiry", "image_upload", "image_url"}
    )

    def __init__(self) -> None:
        self.secret = "sk-fake-" + secrets.token_hex(12)
        self.fake = FakeProvider(api_key=self.secret)

    @property
    def provider(self) -> Provider:
        return self.fake

    def provider_at(self, base_url: str) -> Provider:
        raise NotImplementedError("the fake has no address")

    async def pin(self, external_id: str, pin: Pin) -> None:
        behaviour, elapsed = _behaviour(pin, self.status_words)
        self.fake.rescript(external_id, behaviour, elapsed=elapsed)

    def inject(self, operation: Operation, faults: Faults) -> None:
        raise NotImplementedError("the fake speaks no HTTP")

    def sent(self, operation: Operation) -> int:
        counts = {
            "create": len(self.fake.submissions),
            "status": self.fake.status_calls,
            "cancel": len(self.fake.cancelled),
        }
        return counts[operation]

    def received(self, external_id: str) -> Received:
        request = self.fake.jobs[external_id].request
        image: bytes | str | None = request.image.data if request.image else request.image_url
        return Received(
            prompt=request.prompt,
            model=request.model,
            seconds=request.seconds,
            size=request.size,
            aspect_ratio=request.aspect_ratio,
            resolution=request.resolution,
            image=image,
            options=request.provider_options,
        )

    def content(self, external_id: str) -> bytes:
        return sample_video()


def _behaviour(pin: Pin, words: Mapping[str, Phase]) -> tuple[FakeBehaviour, float]:
    """The behaviour that shows ``pin``, and how far into it the job is."""
    if pin.word is not None and pin.word not in words:
        return FakeBehaviour(render_for=0, outcome="unknown", unknown_word=pin.word), 0.0
    match pin.phase:
        case "queued":
            return FakeBehaviour(poll_after=pin.poll_after, queued_for=math.inf), 0.0
        case "in_progress":
            # half a percent in, so the whole percent is read however the clock rounds
            elapsed = ((pin.progress or 0) + 0.5) * _RENDER / 100
            return FakeBehaviour(
                poll_after=pin.poll_after, render_for=_RENDER, progress_step=1
            ), elapsed
        case "completed":
            return FakeBehaviour(
                poll_after=pin.poll_after,
                render_for=0,
                outcome="expired" if pin.expired else "completed",
            ), 0.0
        case "failed":
            error = TaskError(
                code=pin.error_code or "generation_failed",
                message=pin.error_message or "the render failed",
            )
            return FakeBehaviour(render_for=0, outcome="failed", error=error), 0.0
        case "cancelled":
            return FakeBehaviour(render_for=0, outcome="cancelled"), 0.0


class TestFakeProviderConformance(ProviderConformance):
    @pytest.fixture
    def harness(self) -> ProviderHarness:
        return FakeHarness()
