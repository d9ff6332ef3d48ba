"""FalProvider passes the provider conformance kit against the simulator's fal shape."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sora_tasks.testing import FalSimulatorHarness, ProviderHarness
from sora_tasks.testing.conformance import ProviderConformance

# a render long enough that a job pinned at a percentage stays there for the whole check
_RENDER = 1e6


class TestFalConformance(ProviderConformance):
    """The default model, Veo 3.1 text-to-video: frames, durations, audio, seed, negative."""

    @pytest.fixture
    async def harness(self) -> AsyncIterator[ProviderHarness]:
        rig = FalSimulatorHarness(render_seconds=_RENDER)
        try:
            yield rig
        finally:
            await rig.aclose()


class TestFalReferenceImagesConformance(ProviderConformance):
    """Veo 3.1 reference-to-video: up to three reference images, uploaded or by URL."""

    @pytest.fixture
    async def harness(self) -> AsyncIterator[ProviderHarness]:
        rig = FalSimulatorHarness(render_seconds=_RENDER, model="fal-ai/veo3.1/reference-to-video")
        try:
            yield rig
        finally:
            await rig.aclose()


class TestFalUploadedImagesConformance(ProviderConformance):
    """Reference images uploaded to fal's storage first, and sent by URL."""

    @pytest.fixture
    async def harness(self) -> AsyncIterator[ProviderHarness]:
        rig = FalSimulatorHarness(
            render_seconds=_RENDER,
            model="fal-ai/veo3.1/reference-to-video",
            adapter_options={"images": "upload"},
        )
        try:
            yield rig
        finally:
            await rig.aclose()
