"""Every shipped adapter passes the provider conformance kit, and so does the fake.

The OpenAI Videos, relay, Replicate, Runway and Veo adapters run it against the shipped
simulator over a real socket; ``FakeProvider`` runs it in process, scripted through its
behaviour API.
"""

from __future__ import annotations

import math
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from sora_tasks import TaskError
from sora_tasks._models import ImageData
from sora_tasks.providers import Provider, ProviderCapabilities
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
    ReplicateSimulatorHarness,
    RunwaySimulatorHarness,
    VeoSimulatorHarness,
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


class TestReplicateConformance(ProviderConformance):
    @pytest.fixture
    def harness(self) -> Iterator[ProviderHarness]:
        with ReplicateSimulatorHarness.serve() as harness:
            yield harness


class TestVeoConformance(ProviderConformance):
    @pytest.fixture
    def harness(self) -> Iterator[ProviderHarness]:
        with VeoSimulatorHarness.serve() as harness:
            yield harness


class TestVeoVertexConformance(ProviderConformance):
    @pytest.fixture
    def harness(self) -> Iterator[ProviderHarness]:
        with VeoSimulatorHarness.serve(vertex=True) as harness:
            yield harness


class TestRunwayConformance(ProviderConformance):
    @pytest.fixture
    def harness(self) -> Iterator[ProviderHarness]:
        with RunwaySimulatorHarness.serve() as harness:
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

    def __init__(self, capabilities: ProviderCapabilities | None = None) -> None:
        self.secret = "sk-fake-" + secrets.token_hex(12)
        self.fake = FakeProvider(api_key=self.secret, capabilities=capabilities)

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
        return Received(
            prompt=request.prompt,
            model=request.model,
            seconds=request.seconds,
            size=request.size,
            aspect_ratio=request.aspect_ratio,
            resolution=request.resolution,
            negative_prompt=request.negative_prompt,
            seed=request.seed,
            audio=request.audio,
            image=request.image.data if request.image else request.image_url,
            last_frame=_image(request.last_frame),
            reference_images=tuple(
                image.data if isinstance(image, ImageData) else image
                for image in request.reference_images
            ),
            options=request.provider_options,
        )

    def content(self, external_id: str) -> bytes:
        return sample_video()


def _image(image: ImageData | str | None) -> bytes | str | None:
    return image.data if isinstance(image, ImageData) else image


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


# a model that takes every option, so that each of the kit's submit checks runs here
_EVERY_OPTION = ProviderCapabilities(
    models=frozenset({"fake-veo"}),
    aspect_ratios=frozenset({"16:9", "9:16"}),
    resolutions=frozenset({"720p", "1080p"}),
    seconds=frozenset({4, 8}),
    default_model="fake-veo",
    default_size="1280x720",
    default_seconds=8,
    image_url=True,
    image_matches_size=False,
    last_frame=True,
    max_reference_images=3,
    negative_prompt=True,
    seed=True,
    audio=frozenset({True, False}),
    can_cancel=True,
    min_poll_interval=0.0,
)


class TestFakeProviderWithEveryOptionConformance(ProviderConformance):
    @pytest.fixture
    def harness(self) -> ProviderHarness:
        return FakeHarness(_EVERY_OPTION)


_BROKEN_ADAPTERS = """
import pytest

from sora_tasks import SubmissionUncertainError
from sora_tasks.providers import MultipartRelayProvider, OpenAIVideosProvider, RelayConfig
from sora_tasks.testing import OpenAISimulatorHarness, RelaySimulatorHarness
from sora_tasks.testing.conformance import ProviderConformance


@pytest.fixture
def anyio_backend():
    return "asyncio"


class Careless(OpenAIVideosProvider):
    def __repr__(self):
        return f"Careless({self._http._own_headers['Authorization']})"

    async def submit(self, request):
        try:
            return await super().submit(request)
        except SubmissionUncertainError:
            return await super().submit(request)


def careless(*, base_url, api_key, call_timeout):
    return Careless(api_key=api_key, base_url=base_url, call_timeout=call_timeout)


def trusting_relay(*, base_url, api_key, call_timeout):
    # a content path to fall back on makes a success without a video look downloadable
    config = RelayConfig(path_prefix="/relay/v1/videos")
    return MultipartRelayProvider(
        api_key, base_url=base_url, config=config, call_timeout=call_timeout
    )


class TestCareless(ProviderConformance):
    @pytest.fixture
    def harness(self):
        with OpenAISimulatorHarness.serve(adapter=careless) as harness:
            yield harness


class TestTrustingRelay(ProviderConformance):
    @pytest.fixture
    def harness(self):
        with RelaySimulatorHarness.serve(adapter=trusting_relay) as harness:
            yield harness
"""


def test_the_kit_fails_broken_adapters(tmp_path: Path) -> None:
    """Adapters that leak the key, resend an uncertain create or call an empty result
    COMPLETED fail the checks that look for it, while their sound parts pass."""
    (tmp_path / "test_broken.py").write_text(_BROKEN_ADAPTERS, encoding="utf-8")
    run = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-W", "error"),
            *("-k", "repr or (uncertain and dropped) or empty", "test_broken.py"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    outcomes: dict[str, set[str]] = {}
    for line in run.stdout.splitlines():
        word, _, rest = line.partition(" test_broken.py::")
        if rest and word in ("PASSED", "FAILED", "ERROR"):
            outcomes.setdefault(rest.split(" ", 1)[0], set()).add(word)
    assert "FAILED" in outcomes["TestCareless::test_repr_hides_secret"], run.stdout
    assert "FAILED" in outcomes["TestCareless::test_create_uncertain[dropped]"], run.stdout
    assert "FAILED" in outcomes["TestTrustingRelay::test_done_but_empty_is_failed"], run.stdout
    assert outcomes["TestTrustingRelay::test_repr_hides_secret"] == {"PASSED"}, run.stdout


def test_the_testing_package_imports_without_pytest() -> None:
    """``sora_tasks.testing`` works without pytest; the kit says which extra it needs."""
    script = (
        "import sys\n"
        "sys.modules['pytest'] = None\n"
        "import sora_tasks.testing\n"
        "try:\n"
        "    import sora_tasks.testing.conformance\n"
        "except ModuleNotFoundError as exc:\n"
        "    print(exc)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert run.returncode == 0, run.stderr
    assert 'pip install "sora-tasks[testing]"' in run.stdout
