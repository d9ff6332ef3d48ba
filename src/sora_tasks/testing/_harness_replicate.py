"""The conformance harness for :class:`ReplicateProvider`: the adapter wired to the simulator's
Replicate shape, which the test serves on a real socket."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

from pydantic import JsonValue

from .._retry import Backoff
from ..providers import ReplicateProvider
from ..providers._base import Provider
from ..providers._replicate_models import REPLICATE_MODELS
from ._harness import Feature, Operation, Received
from ._harness_served import ServedHarness, wire_flag, wire_image, wire_number, wire_text
from ._server import serve_in_thread
from ._simulator import SimulatorApp, create_simulator_app
from ._simulator_replicate import REPLICATE_PATH
from ._simulator_state import Phase

__all__ = ["ReplicateSimulatorHarness"]

# in-call retries that wait next to nothing, so a conformance run stays fast
_FAST_BACKOFF = Backoff(initial=0.01, maximum=0.05, jitter=0.0)

_ROUTES: Mapping[Operation, tuple[str, ...]] = {
    "create": ("replicate_create",),
    "status": ("replicate_get",),
    "content": ("replicate_files",),
    "cancel": ("replicate_cancel",),
}


class ReplicateSimulatorHarness(ServedHarness):
    """A :class:`ReplicateProvider` against a served simulator app.

    Build it with :meth:`serve` (which serves a new simulator for the duration of a ``with``), or
    from an ``app`` already served at ``base_url`` (the server's origin) that demands ``secret``.
    ``provider_options`` go to every :class:`ReplicateProvider` the harness builds (``model=``,
    ``webhook_url=``, ...); ``call_timeout`` bounds each of its calls.
    """

    status_words: Mapping[str, Phase] = MappingProxyType(
        {
            "starting": "queued",
            "processing": "in_progress",
            "succeeded": "completed",
            "failed": "failed",
            "canceled": "cancelled",
            "aborted": "cancelled",
        }
    )
    features: frozenset[Feature] = frozenset(
        {"http", "cancel", "progress", "empty_result", "expiry", "image_upload", "image_url"}
    )

    def __init__(
        self,
        app: SimulatorApp,
        base_url: str,
        *,
        secret: str,
        call_timeout: float = 1.0,
        **provider_options: Any,
    ) -> None:
        self.app = app
        self.routes = _ROUTES
        self.base_url = base_url
        self.secret = secret
        self.call_timeout = call_timeout
        self._options = provider_options
        self._provider = self.provider_at(base_url)

    @classmethod
    @contextmanager
    def serve(
        cls,
        *,
        simulator: Mapping[str, Any] | None = None,
        call_timeout: float = 1.0,
        **provider_options: Any,
    ) -> Iterator[ReplicateSimulatorHarness]:
        """Serve a fresh simulator on a free local port and yield a harness over it.

        Predictions leave the queue at once and render for an hour unless pinned, so every
        state a test sees is one it chose; ``simulator`` overrides ``create_simulator_app``
        arguments. The simulator demands the harness's ``secret``.
        """
        secret = "r8_conformance_" + secrets.token_hex(12)
        settings: dict[str, Any] = {
            "queue_seconds": 0,
            "render_seconds": 3600,
            "unique_content": True,
            **(simulator or {}),
            "api_key": secret,
        }
        app = create_simulator_app(**settings)
        with serve_in_thread(app) as base_url:
            yield cls(app, base_url, secret=secret, call_timeout=call_timeout, **provider_options)

    def provider_at(self, base_url: str) -> Provider:
        """A :class:`ReplicateProvider` configured alike, at the server ``base_url``."""
        options = {"backoff": _FAST_BACKOFF, **self._options}
        return ReplicateProvider(
            self.secret,
            base_url=base_url + REPLICATE_PATH,
            call_timeout=self.call_timeout,
            **options,
        )

    def received(self, external_id: str) -> Received:
        """The prediction's input, read back through the model table."""
        job = self.app.state.jobs[external_id]
        body: Mapping[str, Any] = job.fields["body"]  # type: ignore[assignment]
        fields: dict[str, JsonValue] = dict(body.get("input", {}))
        prompt = str(fields.pop("prompt", ""))
        model = job.model
        spec = REPLICATE_MODELS.get(model.split(":", 1)[0])
        if spec is None:
            return Received(prompt, model=model, options=fields)
        seconds = fields.pop(spec.duration_field, None)
        size = fields.pop("size", None) if spec.frame == "size_star" else None
        references = fields.pop(spec.reference_images_field or "", None)
        return Received(
            prompt,
            model=model,
            seconds=seconds if isinstance(seconds, int) else None,
            size=size.replace("*", "x") if isinstance(size, str) else None,
            aspect_ratio=wire_text(fields.pop("aspect_ratio", None)),
            resolution=wire_text(fields.pop("resolution", None)),
            negative_prompt=wire_text(fields.pop(spec.negative_prompt_field or "", None)),
            seed=wire_number(fields.pop(spec.seed_field or "", None)),
            audio=wire_flag(fields.pop(spec.audio_field or "", None)),
            image=wire_image(fields.pop(spec.image_field or "", None)),
            last_frame=wire_image(fields.pop(spec.last_frame_field or "", None)),
            reference_images=tuple(
                image
                for image in map(wire_image, references if isinstance(references, list) else [])
                if image is not None
            ),
            options=fields,
        )
