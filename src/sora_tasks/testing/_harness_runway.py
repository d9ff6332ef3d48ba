"""The conformance harness for :class:`RunwayProvider`: the adapter wired to the simulator's
Runway shape, which the test serves on a real socket."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

from pydantic import JsonValue

from .._retry import Backoff
from ..providers import RunwayProvider
from ..providers._base import Provider
from ._harness import Feature, Operation, Received
from ._harness_served import ServedHarness, wire_flag, wire_image, wire_number, wire_text
from ._server import serve_in_thread
from ._simulator import SimulatorApp, create_simulator_app
from ._simulator_runway import RUNWAY_PATH
from ._simulator_state import Phase

__all__ = ["RunwaySimulatorHarness"]

# in-call retries that wait next to nothing, so a conformance run stays fast
_FAST_BACKOFF = Backoff(initial=0.01, maximum=0.05, jitter=0.0)

_ROUTES: Mapping[Operation, tuple[str, ...]] = {
    "create": ("runway_create",),
    "status": ("runway_get",),
    "content": ("runway_files",),
    "cancel": ("runway_delete",),
}
_MAPPED = ("model", "promptText", "promptImage", "ratio", "duration")


class RunwaySimulatorHarness(ServedHarness):
    """A :class:`RunwayProvider` against a served simulator app.

    Build it with :meth:`serve` (which serves a new simulator for the duration of a ``with``), or
    from an ``app`` already served at ``base_url`` (the server's origin) that demands ``secret``.
    The kit asks for ``model`` (``veo3.1`` by default: it takes text alone or a first frame, a
    last frame, a seed, a negative prompt and the audio switch, so every check runs).
    ``provider_options`` go to every :class:`RunwayProvider` the harness builds.
    """

    status_words: Mapping[str, Phase] = MappingProxyType(
        {
            "PENDING": "queued",
            "THROTTLED": "queued",
            "RUNNING": "in_progress",
            "SUCCEEDED": "completed",
            "FAILED": "failed",
            "CANCELLED": "cancelled",
            "CANCELED": "cancelled",
        }
    )
    features: frozenset[Feature] = frozenset(
        {"http", "cancel", "progress", "empty_result", "image_upload", "image_url"}
    )
    provider_options: Mapping[str, JsonValue] = MappingProxyType(
        {"contentModeration": {"publicFigureThreshold": "low"}}
    )

    def __init__(
        self,
        app: SimulatorApp,
        base_url: str,
        *,
        secret: str,
        model: str = "veo3.1",
        call_timeout: float = 1.0,
        **provider_options: Any,
    ) -> None:
        self.app = app
        self.routes = _ROUTES
        self.base_url = base_url
        self.secret = secret
        self.model = model
        self.call_timeout = call_timeout
        self._options = provider_options
        self._provider = self.provider_at(base_url)

    @classmethod
    @contextmanager
    def serve(
        cls,
        *,
        simulator: Mapping[str, Any] | None = None,
        model: str = "veo3.1",
        call_timeout: float = 1.0,
        **provider_options: Any,
    ) -> Iterator[RunwaySimulatorHarness]:
        """Serve a fresh simulator on a free local port and yield a harness over it.

        Tasks leave the queue at once and render for an hour unless pinned, so every state a
        test sees is one it chose; ``simulator`` overrides ``create_simulator_app`` arguments.
        """
        secret = "key_conformance_" + secrets.token_hex(16)
        settings: dict[str, Any] = {
            "queue_seconds": 0,
            "render_seconds": 3600,
            "unique_content": True,
            **(simulator or {}),
            "api_key": secret,
        }
        app = create_simulator_app(**settings)
        with serve_in_thread(app) as base_url:
            yield cls(
                app,
                base_url,
                secret=secret,
                model=model,
                call_timeout=call_timeout,
                **provider_options,
            )

    def provider_at(self, base_url: str) -> Provider:
        """A :class:`RunwayProvider` configured alike, at the server ``base_url``."""
        options = {"backoff": _FAST_BACKOFF, "model": self.model, **self._options}
        return RunwayProvider(
            self.secret, base_url=base_url + RUNWAY_PATH, call_timeout=self.call_timeout, **options
        )

    def received(self, external_id: str) -> Received:
        """The task's create body, read back into the library's terms."""
        job = self.app.state.jobs[external_id]
        body: Mapping[str, Any] = job.fields["body"]  # type: ignore[assignment]
        images = body.get("promptImage")
        if isinstance(images, list):
            by_position = {item["position"]: item["uri"] for item in images}
            first, last = by_position.get("first"), by_position.get("last")
        else:
            first, last = images, None
        ratio = body.get("ratio")
        seconds = body.get("duration")
        options: dict[str, JsonValue] = {
            key: value
            for key, value in body.items()
            if key not in {*_MAPPED, "seed", "audio", "negativePrompt"}
        }
        return Received(
            str(body.get("promptText", "")),
            model=str(body.get("model")),
            seconds=seconds if isinstance(seconds, int) else None,
            size=ratio.replace(":", "x") if isinstance(ratio, str) else None,
            negative_prompt=wire_text(body.get("negativePrompt")),
            seed=wire_number(body.get("seed")),
            audio=wire_flag(body.get("audio")),
            image=wire_image(first),
            last_frame=wire_image(last),
            options=options,
        )
