"""The Veo models the adapter knows, their rules, and the ``predictLongRunning`` body for a request.

Facts from the Gemini API video guide (https://ai.google.dev/gemini-api/docs/video, read
2026-11-30, as quoted in ``/work/shared/providers-wave2.md`` §1.1) and the ``google-genai`` SDK's
request mappers (``_GenerateVideosParameters_to_mldev`` / ``_to_vertex`` in
``google/genai/models.py``): Veo 3.1 takes ``16:9`` or ``9:16``, ``720p``, ``1080p`` or ``4k``,
4, 6 or 8 seconds, a first frame, a last frame and up to three ``asset`` reference images; 1080p
and 4k come only at 8 seconds, and so do reference images and a last frame (interpolation). The
Gemini API takes no seed and no audio switch (Veo 3 always speaks there); Vertex AI takes both.
Render times are the guide's "11 seconds to 6 minutes": the declared expectation starts the
schedule, which then learns each model's real times.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from .._exceptions import InvalidRequestError, UnsupportedParameterError
from .._models import ImageData
from .._schedule import PollSchedule
from ._base import ProviderCapabilities, SubmitRequest

__all__ = ["VEO_MODELS", "VeoModel", "check_request", "predict_body"]

MAX_IMAGE_BYTES = 20 * 1024 * 1024
"""The largest input image Veo takes (Vertex AI's documented 20 MB; inline bodies share it)."""

_FULL_LENGTH = 8  # the only duration of 1080p, 4k, reference images and interpolation


@dataclass(frozen=True, slots=True)
class VeoModel:
    """One Veo model: what it takes, and how long a job usually takes (median, log-spread)."""

    seconds: frozenset[int]
    resolutions: frozenset[str]
    expected_seconds: float
    aspect_ratios: frozenset[str] = frozenset({"16:9", "9:16"})
    default_seconds: int = _FULL_LENGTH
    last_frame: bool = False
    max_reference_images: int = 0
    full_length_only: frozenset[str] = frozenset()
    audio_switch: bool = True  # on Vertex AI; the Gemini API has none

    def capabilities(self, model: str, *, vertex: bool) -> ProviderCapabilities:
        """What this model accepts through the Gemini API (``vertex=False``) or Vertex AI."""
        return ProviderCapabilities(
            models=frozenset({model}),
            seconds=self.seconds,
            aspect_ratios=self.aspect_ratios,
            resolutions=self.resolutions,
            default_model=model,
            default_size="1280x720",
            default_seconds=self.default_seconds,
            image_upload=True,
            image_url=False,
            max_image_bytes=MAX_IMAGE_BYTES,
            image_matches_size=False,
            last_frame=self.last_frame,
            max_reference_images=self.max_reference_images,
            negative_prompt=True,
            seed=vertex,
            audio=frozenset({True, False}) if vertex and self.audio_switch else frozenset(),
            provider_options=True,
            can_cancel=False,
            schedule=PollSchedule(expected_seconds=self.expected_seconds, expected_spread=0.8),
        )


_VEO_31 = VeoModel(
    seconds=frozenset({4, 6, 8}),
    resolutions=frozenset({"720p", "1080p", "4k"}),
    expected_seconds=90.0,
    last_frame=True,
    max_reference_images=3,
    full_length_only=frozenset({"1080p", "4k"}),
)
_VEO_3 = VeoModel(
    seconds=frozenset({4, 6, 8}),
    resolutions=frozenset({"720p", "1080p"}),
    expected_seconds=90.0,
    full_length_only=frozenset({"1080p"}),
)

VEO_MODELS: Mapping[str, VeoModel] = {
    "veo-3.1-generate-preview": _VEO_31,
    "veo-3.1-generate-001": _VEO_31,
    "veo-3.1-fast-generate-preview": replace(_VEO_31, expected_seconds=50.0),
    "veo-3.1-fast-generate-001": replace(_VEO_31, expected_seconds=50.0),
    "veo-3.0-generate-001": _VEO_3,
    "veo-3.0-fast-generate-001": replace(_VEO_3, expected_seconds=50.0),
    "veo-2.0-generate-001": VeoModel(
        seconds=frozenset({5, 6, 7, 8}),
        resolutions=frozenset({"720p"}),
        expected_seconds=60.0,
        audio_switch=False,
    ),
}
"""The Veo models by id (the same ids on the Gemini API and on Vertex AI)."""


def check_request(spec: VeoModel | None, request: SubmitRequest) -> None:
    """Refuse what the model's capabilities cannot express: the rules between fields.

    1080p and 4k (where the model has them), reference images and a last frame need 8 seconds;
    an image must be uploaded bytes (Veo fetches no URL).
    """
    if request.image_url is not None:
        raise UnsupportedParameterError(
            "Veo takes the first frame as uploaded bytes, not a URL", field="reference_image"
        )
    for name, value in (("last_frame", request.last_frame), *_references(request)):
        if isinstance(value, str):
            raise UnsupportedParameterError(
                f"Veo takes {name} as uploaded bytes, not a URL", field=name
            )
    if spec is None or request.seconds == _FULL_LENGTH:
        return
    where = f"Veo model {request.model!r}"
    if request.resolution is not None and request.resolution.lower() in spec.full_length_only:
        raise _needs_full_length(f"{where} renders {request.resolution} only", "seconds")
    if request.reference_images:
        raise _needs_full_length(f"{where} takes reference_images only", "reference_images")
    if request.last_frame is not None:
        raise _needs_full_length(f"{where} interpolates to a last_frame only", "last_frame")


def predict_body(
    request: SubmitRequest, *, vertex: bool, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``predictLongRunning`` body: one instance, then the parameters.

    ``provider_options`` go into ``parameters`` verbatim (``personGeneration``,
    ``enhancePrompt``, Vertex AI's ``storageUri`` ...), over what was mapped and over ``extra``
    (the adapter's own defaults).
    """
    instance: dict[str, Any] = {"prompt": request.prompt}
    if request.image is not None:
        instance["image"] = image_value(request.image)
    if isinstance(request.last_frame, ImageData):
        instance["lastFrame"] = image_value(request.last_frame)
    if request.reference_images:
        instance["referenceImages"] = [
            {"image": image_value(image), "referenceType": "asset"}
            for image in request.reference_images
            if isinstance(image, ImageData)
        ]
    parameters: dict[str, Any] = {"sampleCount": 1, "durationSeconds": request.seconds}
    if request.aspect_ratio is not None:
        parameters["aspectRatio"] = request.aspect_ratio
    if request.resolution is not None:
        parameters["resolution"] = request.resolution.lower()
    if request.negative_prompt is not None:
        parameters["negativePrompt"] = request.negative_prompt
    if request.seed is not None:
        if not vertex:
            raise UnsupportedParameterError(
                "the Gemini API takes no seed (Vertex AI does)", field="seed"
            )
        parameters["seed"] = request.seed
    if request.audio is not None:
        if not vertex:
            raise UnsupportedParameterError(
                "the Gemini API has no audio switch: Veo 3 always generates audio there",
                field="audio",
            )
        parameters["generateAudio"] = request.audio
    parameters.update(extra or {})
    parameters.update(request.provider_options)
    return {"instances": [instance], "parameters": parameters}


def image_value(image: ImageData) -> dict[str, str]:
    """An image as Veo takes it inline."""
    return {
        "bytesBase64Encoded": base64.b64encode(image.data).decode("ascii"),
        "mimeType": image.mime_type,
    }


def _references(request: SubmitRequest) -> list[tuple[str, object]]:
    return [("reference_images", image) for image in request.reference_images]


def _needs_full_length(what: str, field: str) -> InvalidRequestError:
    return UnsupportedParameterError(
        f"{what} at {_FULL_LENGTH} seconds; set seconds={_FULL_LENGTH}",
        field=field,
        limit=_FULL_LENGTH,
    )
