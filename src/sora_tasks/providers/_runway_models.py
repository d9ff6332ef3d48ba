"""The video models Runway's API serves that the adapter knows, and the mapping of a
:class:`SubmitRequest` onto a create body for one of them.

Runway names a frame by its pixels (``ratio: "1280:720"``) and takes a fixed list per model and
endpoint: ``POST /v1/image_to_video`` when a first frame is given, ``POST /v1/text_to_video``
when none is (for the models that have it). Each body is a closed schema per model, so a field
a model does not take is refused by Runway: the table below says which fields each one takes.

Sources (read 2026-11-30): the official SDK's request types, ``runwayml`` 5.24.0
(``types/image_to_video_create_params.py``, ``types/text_to_video_create_params.py``); durations
of ``gen4_turbo`` (2 to 10 s, like ``gen4.5``) from https://docs.venice.ai/models/runway-gen-4-turbo
(secondary; the SDK types say only "int"). Render times are estimates (Runway publishes none).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import JsonValue

from .._models import ImageData
from .._schedule import PollSchedule
from ._base import ProviderCapabilities, SubmitRequest

__all__ = [
    "MAX_DATA_URI_CHARS",
    "RUNWAY_MIN_POLL_INTERVAL",
    "RUNWAY_MODELS",
    "Endpoint",
    "RunwayInputError",
    "RunwayModel",
    "create_body",
]

Endpoint = Literal["image_to_video", "text_to_video"]

MAX_DATA_URI_CHARS = 5_000_000
"""Runway takes an image inline as a data URI of at most 5 MB; larger ones go by HTTPS URL."""

RUNWAY_MIN_POLL_INTERVAL = 5.0
"""Runway: "do not expect updates more frequent than once every five seconds for a task"."""

# the longest data URI header an accepted image type gets ("data:image/webp;base64,")
_HEADER_CHARS = len("data:image/jpeg;base64,")
_MAX_INLINE_BYTES = (MAX_DATA_URI_CHARS - _HEADER_CHARS) // 4 * 3
_GEN4_RATIOS = ("1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672")
_VEO_RATIOS = ("1280:720", "720:1280", "1920:1080", "1080:1920")


class RunwayInputError(ValueError):
    """A request the model cannot take, found before anything was sent.

    The adapter raises it again as a ``RunwayRequestError`` (an ``UnsupportedParameterError`` that
    is also a ``ProviderError``), which names the provider; the table itself knows none.
    """

    def __init__(self, message: str, *, field: str, limit: object = None) -> None:
        super().__init__(message)
        self.field = field
        self.limit = limit


@dataclass(frozen=True, slots=True)
class RunwayModel:
    """One Runway video model: its frames, durations, endpoints and optional fields.

    ``ratios`` are Runway's frames (``"1280:720"``) through ``image_to_video``;
    ``text_ratios`` those through ``text_to_video`` (``None``: the model has no text-only
    endpoint, so a first frame is required). ``last_frame`` says whether a last frame may follow
    the first; ``expected_seconds`` is the render-time estimate the poll schedule starts from.
    """

    ratios: tuple[str, ...]
    seconds: frozenset[int]
    default_seconds: int
    text_ratios: tuple[str, ...] | None = None
    last_frame: bool = False
    negative_prompt: bool = False
    seed: bool = True
    audio: bool = False
    expected_seconds: float = 60.0

    def capabilities(self, model: str) -> ProviderCapabilities:
        """What this model accepts, in the library's terms (a Runway ratio is a size)."""
        ratios = dict.fromkeys((*self.ratios, *(self.text_ratios or ())))
        return ProviderCapabilities(
            models=frozenset({model}),
            sizes=frozenset(ratio.replace(":", "x") for ratio in ratios),
            seconds=self.seconds,
            default_model=model,
            default_size=self.ratios[0].replace(":", "x"),
            default_seconds=self.default_seconds,
            image_upload=True,
            image_url=True,
            max_image_bytes=_MAX_INLINE_BYTES,
            image_matches_size=False,  # Runway crops the first frame to the ratio itself
            last_frame=self.last_frame,
            negative_prompt=self.negative_prompt,
            seed=self.seed,
            audio=frozenset({True, False}) if self.audio else frozenset(),
            provider_options=True,
            can_cancel=True,
            can_delete=True,
            min_poll_interval=RUNWAY_MIN_POLL_INTERVAL,
            schedule=PollSchedule(expected_seconds=self.expected_seconds),
        )


_VEO_3_1 = RunwayModel(
    ratios=_VEO_RATIOS,
    text_ratios=_VEO_RATIOS,
    seconds=frozenset({4, 6, 8}),
    default_seconds=8,
    last_frame=True,
    negative_prompt=True,
    audio=True,
    expected_seconds=90.0,
)

RUNWAY_MODELS: Mapping[str, RunwayModel] = {
    "gen4_turbo": RunwayModel(
        ratios=_GEN4_RATIOS,
        seconds=frozenset(range(2, 11)),
        default_seconds=5,
        expected_seconds=45.0,
    ),
    "gen4.5": RunwayModel(
        ratios=_GEN4_RATIOS,
        text_ratios=("1280:720", "720:1280"),
        seconds=frozenset(range(2, 11)),
        default_seconds=5,
        expected_seconds=90.0,
    ),
    "veo3.1": _VEO_3_1,
    "veo3.1_fast": RunwayModel(
        ratios=_VEO_RATIOS,
        text_ratios=_VEO_RATIOS,
        seconds=frozenset({4, 6, 8}),
        default_seconds=8,
        last_frame=True,
        negative_prompt=True,
        audio=True,
        expected_seconds=60.0,
    ),
}
"""The known models, by Runway's model name."""


def create_body(
    spec: RunwayModel | None, request: SubmitRequest
) -> tuple[Endpoint, dict[str, JsonValue]]:
    """The endpoint and JSON body for ``request``; :class:`RunwayInputError` when the model
    cannot take it. ``provider_options`` go in last, over the mapped fields (so an explicit
    ``ratio`` or ``duration`` there is sent as it is, unchecked)."""
    first = request.image if request.image is not None else request.image_url
    options = request.provider_options
    endpoint: Endpoint = "image_to_video" if first is not None else "text_to_video"
    body: dict[str, JsonValue] = {"model": request.model, "promptText": request.prompt}
    if first is not None:
        body["promptImage"] = _prompt_image(first, request.last_frame)
    elif request.last_frame is not None:
        raise RunwayInputError(
            "Runway takes a last frame only after a first frame: pass reference_image too",
            field="last_frame",
        )
    body["ratio"] = request.size.replace("x", ":")
    body["duration"] = request.seconds
    if spec is None:
        body.update(options)
        return endpoint, body
    if first is None and spec.text_ratios is None:
        raise RunwayInputError(
            f"{request.model} makes videos from a first frame only (image_to_video): pass "
            "reference_image",
            field="reference_image",
        )
    ratios = spec.ratios if first is not None else spec.text_ratios or ()
    if "ratio" not in options and body["ratio"] not in ratios:
        sizes = [ratio.replace(":", "x") for ratio in ratios]
        how = "from a first frame" if first is not None else "from text alone"
        raise RunwayInputError(
            f"{request.model} {how} makes these sizes only: {', '.join(sizes)} (asked for "
            f"{request.size})",
            field="size",
            limit=sizes,
        )
    if "duration" not in options and request.seconds not in spec.seconds:
        allowed = sorted(spec.seconds)
        raise RunwayInputError(
            f"{request.model} makes videos of {', '.join(map(str, allowed))} seconds only "
            f"(asked for {request.seconds})",
            field="seconds",
            limit=allowed,
        )
    if request.last_frame is not None and not spec.last_frame:
        raise RunwayInputError(f"{request.model} takes no last frame", field="last_frame")
    for name, value, taken in (
        ("negativePrompt", request.negative_prompt, spec.negative_prompt),
        ("seed", request.seed, spec.seed),
        ("audio", request.audio, spec.audio),
    ):
        if value is None:
            continue
        if not taken:
            field = {"negativePrompt": "negative_prompt"}.get(name, name)
            raise RunwayInputError(f"{request.model} takes no {field}", field=field)
        body[name] = value
    if request.reference_images:
        raise RunwayInputError(
            f"{request.model} takes no reference_images", field="reference_images", limit=0
        )
    body.update(options)
    return endpoint, body


def image_uri(image: ImageData | str, field: str = "reference_image") -> str:
    """An image as Runway takes it: an HTTPS URL passed through, or the bytes as a data URI."""
    if isinstance(image, str):
        if not image.startswith("https://"):
            raise RunwayInputError(
                f"Runway fetches image URLs over HTTPS only ({field} is not an https:// URL)",
                field=field,
            )
        return image
    uri = f"data:{image.mime_type};base64,{base64.b64encode(image.data).decode('ascii')}"
    if len(uri) > MAX_DATA_URI_CHARS:
        raise RunwayInputError(
            f"an image inlined as a data URI may be at most {MAX_DATA_URI_CHARS:,} characters "
            f"(this one is {len(uri):,}); pass a larger {field} by HTTPS URL",
            field=field,
            limit=MAX_DATA_URI_CHARS,
        )
    return uri


def _prompt_image(first: ImageData | str, last: ImageData | str | None) -> JsonValue:
    """One first frame as a plain URI; with a last frame, the positioned list."""
    if last is None:
        return image_uri(first)
    return [
        {"uri": image_uri(first), "position": "first"},
        {"uri": image_uri(last, "last_frame"), "position": "last"},
    ]
