"""The conformance harness for :class:`VeoProvider`: the adapter wired to the simulator's Veo
shape (the Gemini API, or with ``vertex=True`` Vertex AI), which the test serves on a real
socket."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

from pydantic import JsonValue

from .._retry import Backoff
from ..providers import VeoProvider
from ..providers._base import Provider
from ._harness import Feature, Operation, Received
from ._harness_served import ServedHarness, wire_flag, wire_number, wire_text
from ._server import serve_in_thread
from ._simulator import SimulatorApp, create_simulator_app
from ._simulator_state import Phase
from ._simulator_veo import VEO_PATH, VERTEX_PATH

__all__ = ["StaticCredentials", "VeoSimulatorHarness"]

# in-call retries that wait next to nothing, so a conformance run stays fast
_FAST_BACKOFF = Backoff(initial=0.01, maximum=0.05, jitter=0.0)

_ROUTES: Mapping[Operation, tuple[str, ...]] = {
    "create": ("veo_create",),
    "status": ("veo_get",),
    "content": ("veo_files",),
    "cancel": ("veo_cancel",),  # Veo has none: nothing is ever sent there
}
_VERTEX_ROUTES: Mapping[Operation, tuple[str, ...]] = {
    "create": ("vertex_create",),
    "status": ("vertex_get",),
    "content": ("vertex_get",),  # the video comes inline in the operation
    "cancel": ("vertex_cancel",),
}
_MAPPED_PARAMETERS = ("sampleCount", "durationSeconds", "aspectRatio", "resolution")


class VeoSimulatorHarness(ServedHarness):
    """A :class:`VeoProvider` against a served simulator app.

    Build it with :meth:`serve`, or from an ``app`` already served at ``base_url`` (the server's
    origin) that demands ``secret``. With ``vertex`` the adapter is :meth:`VeoProvider.vertex`,
    authenticated by credentials whose token is ``secret`` (videos come back inline).
    ``provider_options`` go to every :class:`VeoProvider` the harness builds; ``call_timeout``
    bounds each of its calls.
    """

    status_words: Mapping[str, Phase] = MappingProxyType(
        {"running": "in_progress", "done": "completed", "error": "failed"}
    )
    features: frozenset[Feature] = frozenset({"http", "empty_result", "image_upload"})
    provider_options: Mapping[str, JsonValue] = MappingProxyType(
        {"personGeneration": "allow_adult", "enhancePrompt": True}
    )

    def __init__(
        self,
        app: SimulatorApp,
        base_url: str,
        *,
        secret: str,
        call_timeout: float = 1.0,
        vertex: bool = False,
        **provider_options: Any,
    ) -> None:
        self.vertex = vertex
        self.routes = _VERTEX_ROUTES if vertex else _ROUTES
        self.app = app
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
        vertex: bool = False,
        **provider_options: Any,
    ) -> Iterator[VeoSimulatorHarness]:
        """Serve a fresh simulator on a free local port and yield a harness over it.

        Operations render for an hour unless pinned, so every state a test sees is one it
        chose; ``simulator`` overrides ``create_simulator_app`` arguments. The simulator demands
        the harness's ``secret`` as ``x-goog-api-key``.
        """
        secret = "AIzaConformance" + secrets.token_hex(12)
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
                call_timeout=call_timeout,
                vertex=vertex,
                **provider_options,
            )

    def provider_at(self, base_url: str) -> Provider:
        """A :class:`VeoProvider` configured alike, at the server ``base_url``."""
        options = {"backoff": _FAST_BACKOFF, **self._options}
        if self.vertex:
            return VeoProvider.vertex(
                "conformance",
                "us-central1",
                StaticCredentials(self.secret),
                base_url=base_url + VERTEX_PATH,
                storage_url=base_url,
                call_timeout=self.call_timeout,
                **options,
            )
        return VeoProvider(
            self.secret, base_url=base_url + VEO_PATH, call_timeout=self.call_timeout, **options
        )

    def job_id(self, external_id: str) -> str:
        """The operation name's last part is the simulator's job."""
        return external_id.rsplit("/", 1)[-1]

    def received(self, external_id: str) -> Received:
        """The operation's instance and parameters, read back into the library's terms."""
        job = self.app.state.jobs[self.job_id(external_id)]
        body: Mapping[str, Any] = job.fields["body"]  # type: ignore[assignment]
        instance: Mapping[str, Any] = body["instances"][0]
        parameters: dict[str, JsonValue] = dict(body.get("parameters", {}))
        seconds = parameters.get("durationSeconds")
        for name in _MAPPED_PARAMETERS:
            parameters.pop(name, None)
        references = instance.get("referenceImages", [])
        return Received(
            str(instance.get("prompt", "")),
            model=str(job.fields["model"]),
            seconds=seconds if isinstance(seconds, int) else None,
            aspect_ratio=wire_text(body.get("parameters", {}).get("aspectRatio")),
            resolution=wire_text(body.get("parameters", {}).get("resolution")),
            negative_prompt=wire_text(parameters.pop("negativePrompt", None)),
            seed=wire_number(parameters.pop("seed", None)),
            audio=wire_flag(parameters.pop("generateAudio", None)),
            image=_image(instance.get("image")),
            last_frame=_image(instance.get("lastFrame")),
            reference_images=tuple(
                image
                for image in (_image(item.get("image")) for item in references)
                if image is not None
            ),
            options=parameters,
        )


class StaticCredentials:
    """google-auth-like credentials holding one fixed token (the simulator takes any bearer
    token it was given as its key); ``refreshes`` counts the refreshes asked of it."""

    def __init__(self, token: str) -> None:
        self.token: str | None = None
        self.valid = False
        self.refreshes = 0
        self._token = token

    def __repr__(self) -> str:
        return f"{type(self).__name__}(valid={self.valid})"

    def refresh(self, request: object) -> None:
        """Hand out the token (google-auth calls this with a transport request)."""
        self.refreshes += 1
        self.token, self.valid = self._token, True


def _image(value: object) -> bytes | None:
    if not isinstance(value, dict):
        return None
    encoded = value.get("bytesBase64Encoded")
    return base64.b64decode(encoded) if isinstance(encoded, str) else None
