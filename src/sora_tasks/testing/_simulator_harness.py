"""Conformance harnesses over the shipped simulator: its OpenAI Videos shape and its relay shape.

Users' own OpenAI-shaped or relay adapters reuse them: pass ``adapter=`` to build theirs in
place of the library's, and run the conformance kit against the simulator unchanged.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import ClassVar, Protocol, Self, cast

from pydantic import JsonValue

from .._retry import Backoff
from ..providers._base import Provider
from ..providers.openai import OpenAIVideosProvider
from ..providers.relay import MultipartRelayProvider, RelayConfig
from ._harness import Feature, Operation, ProviderHarness, Received
from ._server import serve_in_thread
from ._simulator import SimulatorApp, create_simulator_app
from ._simulator_faults import Faults
from ._simulator_state import Phase, Pin, SimulatedJob

__all__ = ["AdapterFactory", "OpenAISimulatorHarness", "RelaySimulatorHarness"]

RELAY_PATH = "/relay/v1/videos"

# in-call retries that wait next to nothing, so a kit run stays fast
_FAST_BACKOFF = Backoff(initial=0.01, maximum=0.05, jitter=0.0)


class AdapterFactory(Protocol):
    """Builds the adapter under test: pointed at ``base_url``, with ``api_key`` and a short
    ``call_timeout`` (seconds) bounding each of its calls."""

    def __call__(self, *, base_url: str, api_key: str, call_timeout: float) -> Provider: ...


class _SimulatorHarness(ProviderHarness):
    """What both shapes share: the simulator app, its server's address and the adapter."""

    api_path: ClassVar[str]
    routes: ClassVar[Mapping[Operation, tuple[str, ...]]]
    mapped_fields: ClassVar[frozenset[str]]

    def __init__(
        self,
        app: SimulatorApp,
        base_url: str,
        *,
        secret: str,
        adapter: AdapterFactory | None = None,
        call_timeout: float = 2.0,
    ) -> None:
        self.app = app
        self.base_url = base_url
        self.secret = secret
        self.call_timeout = call_timeout
        self._adapter = adapter or self.default_adapter
        self._provider = self.provider_at(base_url)

    @classmethod
    @contextmanager
    def serve(
        cls, *, adapter: AdapterFactory | None = None, call_timeout: float = 2.0
    ) -> Iterator[Self]:
        """Serve a fresh simulator on a free local port and yield a harness over it.

        Jobs leave the queue at once and render for an hour unless pinned, so every state a
        test sees is one it chose. The simulator demands the harness's ``secret``.
        """
        secret = "sk-conformance-" + secrets.token_hex(12)
        app = create_simulator_app(
            queue_seconds=0,
            render_seconds=3600,
            api_key=secret,
            poll_after_ms=None,
            unique_content=True,
            relay_path=RELAY_PATH,
        )
        with serve_in_thread(app) as base_url:
            yield cls(app, base_url, secret=secret, adapter=adapter, call_timeout=call_timeout)

    @staticmethod
    def default_adapter(*, base_url: str, api_key: str, call_timeout: float) -> Provider:
        """The library's own adapter for this shape."""
        raise NotImplementedError

    @property
    def provider(self) -> Provider:
        """The adapter under test, pointed at the simulator."""
        return self._provider

    def provider_at(self, base_url: str) -> Provider:
        """The same adapter, configured alike but pointed at ``base_url``."""
        return self._adapter(
            base_url=base_url + self.api_path, api_key=self.secret, call_timeout=self.call_timeout
        )

    async def pin(self, external_id: str, pin: Pin) -> None:
        """Force the simulated job into ``pin``'s state."""
        self.app.state.pin(external_id, pin)

    def inject(self, operation: Operation, faults: Faults) -> None:
        """Arm ``faults`` on the simulator's routes for ``operation``."""
        routes = self.routes[operation]
        if not routes:
            raise ValueError(f"the simulated API has no route for {operation!r}")
        for route in routes:
            self.app.state.faults.set(route, faults)

    def sent(self, operation: Operation) -> int:
        """Requests for ``operation`` that reached the simulator so far."""
        return sum(self.app.state.hits[route] for route in self.routes[operation])

    def content(self, external_id: str) -> bytes:
        """The simulator's video for the job."""
        return self.app.config.content.data

    def _job(self, external_id: str) -> SimulatedJob:
        return self.app.state.jobs[external_id]

    def _options(self, fields: Mapping[str, object]) -> Mapping[str, JsonValue]:
        extra = {key: value for key, value in fields.items() if key not in self.mapped_fields}
        return cast("Mapping[str, JsonValue]", extra)


class OpenAISimulatorHarness(_SimulatorHarness):
    """The simulator's OpenAI Videos shape (``/v1/videos``) and an adapter that speaks it.

    By default the adapter is :class:`~sora_tasks.providers.OpenAIVideosProvider`; ``adapter``
    builds another (it gets ``base_url`` ending in ``/v1``). Use it as
    ``with OpenAISimulatorHarness.serve() as harness: ...``.
    """

    api_path = "/v1"
    routes: ClassVar[Mapping[Operation, tuple[str, ...]]] = {
        "create": ("create",),
        "status": ("retrieve",),
        "content": ("content",),
        "cancel": (),
    }
    mapped_fields = frozenset({"prompt", "model", "seconds", "size", "input_reference"})
    status_words: Mapping[str, Phase] = {
        "queued": "queued",
        "in_progress": "in_progress",
        "completed": "completed",
        "failed": "failed",
    }
    features: frozenset[Feature] = frozenset(
        {"http", "progress", "poll_after", "expiry", "image_upload", "image_url"}
    )
    # the OpenAI Videos API refuses any input field it does not define
    provider_options: Mapping[str, JsonValue] = {}

    @staticmethod
    def default_adapter(*, base_url: str, api_key: str, call_timeout: float) -> Provider:
        """:class:`~sora_tasks.providers.OpenAIVideosProvider` with fast in-call retries."""
        return OpenAIVideosProvider(
            api_key=api_key, base_url=base_url, call_timeout=call_timeout, backoff=_FAST_BACKOFF
        )

    def received(self, external_id: str) -> Received:
        """The create as the simulator's OpenAI shape recorded it."""
        job = self._job(external_id)
        reference = job.fields.get("input_reference")
        image: bytes | str | None = None
        if job.reference is not None:
            image = job.reference.data
        elif isinstance(reference, Mapping) and isinstance(reference.get("image_url"), str):
            image = reference["image_url"]
        return Received(
            prompt=job.prompt,
            model=job.model,
            seconds=int(job.seconds),
            size=job.size,
            image=image,
            options=self._options(job.fields),
        )

    def content(self, external_id: str) -> bytes:
        """The sample video followed by the job's id (the simulator tells jobs apart)."""
        return self.app.config.content.data + external_id.encode()


class RelaySimulatorHarness(_SimulatorHarness):
    """The simulator's multipart relay shape and an adapter that speaks it.

    By default the adapter is :class:`~sora_tasks.providers.MultipartRelayProvider` with the
    simulated relay's dialect (its path, no content endpoint: the video is at the URL the
    status names); ``adapter`` builds another (it gets the server's origin as ``base_url``).
    """

    api_path = ""
    routes: ClassVar[Mapping[Operation, tuple[str, ...]]] = {
        "create": ("relay_create",),
        "status": ("relay_status",),
        "content": ("files",),
        "cancel": (),
    }
    mapped_fields = frozenset(
        {"prompt", "model", "seconds", "duration", "size", "aspect_ratio", "orientation"}
        | {"input_reference"}
    )
    status_words: Mapping[str, Phase] = {
        "pending": "queued",
        "processing": "in_progress",
        "success": "completed",
        "failure": "failed",
        "cancelled": "cancelled",
    }
    features: frozenset[Feature] = frozenset(
        {"http", "progress", "poll_after", "empty_result", "expiry", "image_upload"}
    )

    @staticmethod
    def default_adapter(*, base_url: str, api_key: str, call_timeout: float) -> Provider:
        """:class:`~sora_tasks.providers.MultipartRelayProvider` in the simulated dialect."""
        return MultipartRelayProvider(
            api_key,
            base_url=base_url,
            config=RelayConfig(path_prefix=RELAY_PATH, content_path=None),
            call_timeout=call_timeout,
            backoff=_FAST_BACKOFF,
        )

    def received(self, external_id: str) -> Received:
        """The create as the simulator's relay shape recorded it."""
        job = self._job(external_id)
        reference = job.fields.get("input_reference")
        image: bytes | str | None = None
        if job.reference is not None:
            image = job.reference.data
        elif isinstance(reference, str) and reference:
            image = reference
        return Received(
            prompt=job.prompt,
            model=job.model,
            seconds=int(job.seconds),
            size=job.size,
            image=image,
            options=self._options(job.fields),
        )
