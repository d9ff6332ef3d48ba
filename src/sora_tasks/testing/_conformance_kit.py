"""The conformance kit's hands: every provider call a check makes goes through :class:`Kit`,
which keeps what came back so that the secret can be looked for in all of it at the end."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

import anyio
import pytest

from .._models import ImageData, TaskStatus
from ..providers._base import Provider, ProviderCapabilities, ProviderJob, SubmitRequest
from ._conformance_support import leaks, make_image, make_request
from ._harness import Feature, ProviderHarness, Received

__all__ = ["Kit"]

E = TypeVar("E", bound=BaseException)

_CANCEL_WAIT = 5.0
_CANCEL_POLL = 0.05


class Kit:
    """The harness under test, and what its adapter answered during one check."""

    def __init__(self, harness: ProviderHarness) -> None:
        self.harness = harness
        self.jobs: list[ProviderJob] = []
        self.errors: list[BaseException] = []
        self._others: list[Provider] = []

    @property
    def provider(self) -> Provider:
        """The adapter under test."""
        return self.harness.provider

    @property
    def model(self) -> str:
        """The model the kit asks for."""
        return self.harness.model or self.provider.capabilities.default_model

    @property
    def capabilities(self) -> ProviderCapabilities:
        """What the model the kit asks for accepts."""
        capabilities = self.provider.capabilities_for(self.model)
        assert capabilities is not None, f"the adapter does not know its own model {self.model!r}"
        return capabilities

    def require(self, feature: Feature, why: str) -> None:
        """Skip the check, saying ``why``, unless the harness's API offers ``feature``."""
        if feature not in self.harness.features:
            pytest.skip(f"{type(self.harness).__name__}: {why}")

    def request(self, **fields: Any) -> SubmitRequest:
        """A create for the kit's model; ``fields`` override the defaults."""
        return make_request(self.capabilities, self.model, **fields)

    def image(self, request_size: str, shade: int = 128) -> ImageData:
        """A first frame for a request of ``request_size``: of that size when the model wants
        it, else a small one."""
        return make_image(request_size if self.capabilities.image_matches_size else "64x64", shade)

    async def submit(self, request: SubmitRequest) -> tuple[ProviderJob, Received]:
        """Submit ``request``; the job and the create as the simulator received it."""
        job = self.keep(await self.provider.submit(request))
        assert job.external_id, "submit returned a job without an id"
        assert job.status in (TaskStatus.QUEUED, TaskStatus.PROCESSING), (
            f"a new job answered {job.status} ({job.raw_status!r}), not QUEUED or PROCESSING"
        )
        received = self.harness.received(job.external_id)
        assert received.prompt == request.prompt
        if received.model is not None:
            assert received.model == request.model
        if received.seconds is not None:
            assert received.seconds == request.seconds
        return job, received

    async def status(self, external_id: str) -> ProviderJob:
        """One status call."""
        job = self.keep(await self.provider.status(external_id))
        assert job.external_id == external_id
        return job

    async def cancelled(self, external_id: str) -> ProviderJob:
        """The job once it says CANCELLED (asked again for a few seconds), or the last answer."""
        job = await self.status(external_id)
        with anyio.move_on_after(_CANCEL_WAIT):
            while job.status is not TaskStatus.CANCELLED:
                await anyio.sleep(_CANCEL_POLL)
                job = await self.status(external_id)
        return job

    async def download(self, external_id: str, provider: Provider | None = None) -> bytes:
        """The job's video, read whole."""
        async with (provider or self.provider).open_content(external_id) as stream:
            body = b"".join([chunk async for chunk in stream.aiter_bytes()])
        if stream.content_length is not None:
            assert stream.content_length == len(body), "the body is not the declared length"
        return body

    async def raises(self, kind: type[E], call: Awaitable[object]) -> E:
        """The error of ``kind`` that ``call`` raises (kept for the secret check)."""
        with pytest.raises(kind) as raised:
            await call
        self.errors.append(raised.value)
        return raised.value

    def keep(self, job: ProviderJob | None) -> ProviderJob:
        """Remember a job the adapter answered."""
        assert job is not None
        self.jobs.append(job)
        return job

    def provider_at(self, base_url: str) -> Provider:
        """The adapter pointed elsewhere; closed with the kit."""
        provider = self.harness.provider_at(base_url)
        self._others.append(provider)
        return provider

    async def aclose(self) -> None:
        """Close every adapter the check opened, then the harness."""
        for provider in self._others:
            await provider.aclose()
        await self.harness.aclose()

    def leaks(self, records: list[logging.LogRecord]) -> list[str]:
        """Where the harness's secret showed during the check."""
        reprs = [repr(self.provider), *(repr(provider) for provider in self._others)]
        return leaks(
            self.harness.secret, jobs=self.jobs, errors=self.errors, records=records, reprs=reprs
        )
