"""fal's well-known video models: what each endpoint takes, under which names, and the mapping.

Every fal endpoint has its own input schema (``https://fal.ai/models/<id>/api``), and they
disagree: Veo 3.1 wants ``duration: "8s"``, Kling and Seedance ``"5"``, MiniMax ``resolution:
"768P"``; the first frame is ``image_url`` on most, ``start_image_url`` on Kling 3. A
:class:`FalModel` records one endpoint's schema (each entry names the page it was read from) and
:func:`fal_input` maps a :class:`SubmitRequest` onto it. Models outside the table get the prompt,
the first frame as ``image_url`` and ``provider_options`` only.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import JsonValue

from .._exceptions import InvalidRequestError
from .._models import ImageData
from ._base import ProviderCapabilities, SubmitRequest

__all__ = ["FAL_MODELS", "FalModel", "capabilities_of", "fal_input", "image_value"]

ImageMode = Literal["data_uri", "url_only"]


@dataclass(frozen=True, slots=True)
class FalModel:
    """One fal endpoint's input schema, as far as the library's common fields go.

    ``duration`` formats the seconds (``"{}s"`` gives ``"8s"``); a field name of ``None`` means
    the endpoint has no such input. ``image_required`` endpoints refuse a request without a first
    frame. ``resolution_upper`` spells resolutions as MiniMax does (``768P``).
    """

    id: str
    source: str
    seconds: frozenset[int]
    default_seconds: int
    default_size: str
    duration: str = "{}"
    aspect_ratios: frozenset[str] | None = None
    resolutions: frozenset[str] | None = None
    resolution_upper: bool = False
    image: str | None = None
    image_required: bool = False
    last_frame: str | None = None
    reference_images: str | None = None
    max_reference_images: int = 0
    negative_prompt: bool = False
    seed: bool = False
    audio: str | None = None


def _range(first: int, last: int) -> frozenset[int]:
    return frozenset(range(first, last + 1))


_VEO_RATIOS = frozenset({"16:9", "9:16"})
_VEO_RESOLUTIONS = frozenset({"720p", "1080p", "4k"})
_VEO_FAST_RESOLUTIONS = frozenset({"720p", "1080p"})


def _veo(
    model_id: str,
    source: str,
    resolutions: frozenset[str] = _VEO_RESOLUTIONS,
    *,
    image: str | None = None,
    last_frame: str | None = None,
) -> FalModel:
    # every Veo 3.1 endpoint: 4/6/8 s as "8s", 16:9 or 9:16, audio on unless switched off
    return FalModel(
        model_id,
        source,
        seconds=frozenset({4, 6, 8}),
        default_seconds=8,
        default_size="1280x720",
        duration="{}s",
        aspect_ratios=_VEO_RATIOS,
        resolutions=resolutions,
        image=image,
        image_required=image is not None,
        last_frame=last_frame,
        negative_prompt=True,
        seed=True,
        audio="generate_audio",
    )


_VEO_DOC = "https://fal.ai/models/fal-ai/veo3.1/llms.txt"
_VEO_API = "https://fal.ai/docs/model-api-reference/video-generation-api/"
_KLING_RATIOS = frozenset({"16:9", "9:16", "1:1"})
_SEEDANCE_RATIOS = frozenset({"21:9", "16:9", "4:3", "1:1", "3:4", "9:16"})

_TABLE = (
    _veo("fal-ai/veo3.1", _VEO_DOC),
    _veo("fal-ai/veo3.1/fast", _VEO_API + "veo3.1-fast", _VEO_FAST_RESOLUTIONS),
    _veo("fal-ai/veo3.1/image-to-video", _VEO_API + "veo3.1-image-to-video", image="image_url"),
    _veo(
        "fal-ai/veo3.1/fast/image-to-video",
        _VEO_API + "veo3.1-fast-image-to-video",
        _VEO_FAST_RESOLUTIONS,
        image="image_url",
    ),
    _veo(
        "fal-ai/veo3.1/first-last-frame-to-video",
        _VEO_API + "veo3.1-first-last-frame-to-video",
        image="first_frame_url",
        last_frame="last_frame_url",
    ),
    FalModel(
        "fal-ai/veo3.1/reference-to-video",
        _VEO_API + "veo3.1-reference-to-video",
        seconds=frozenset({8}),
        default_seconds=8,
        default_size="1280x720",
        duration="{}s",
        aspect_ratios=_VEO_RATIOS,
        resolutions=_VEO_RESOLUTIONS,
        reference_images="image_urls",
        max_reference_images=3,
        audio="generate_audio",
    ),
    # Kling: durations as bare strings, no resolution input (the tier decides it)
    FalModel(
        "fal-ai/kling-video/v2.5-turbo/pro/text-to-video",
        "https://doc.aimanyi.top/api-355333276.html (fal schema copy); "
        "https://fal.ai/models/fal-ai/kling-video/v2/master/text-to-video/llms.txt",
        seconds=frozenset({5, 10}),
        default_seconds=5,
        default_size="1920x1080",
        aspect_ratios=_KLING_RATIOS,
        negative_prompt=True,
    ),
    FalModel(
        "fal-ai/kling-video/v3/pro/text-to-video",
        "https://fal.ai/docs/model-api-reference/video-generation-api/kling-video-v3-pro",
        seconds=_range(3, 15),
        default_seconds=5,
        default_size="1920x1080",
        aspect_ratios=_KLING_RATIOS,
        negative_prompt=True,
        audio="generate_audio",
    ),
    FalModel(
        "fal-ai/kling-video/v3/pro/image-to-video",
        "https://fal.ai/models/fal-ai/kling-video/v3/pro/image-to-video/api",
        seconds=_range(3, 15),
        default_seconds=5,
        default_size="1920x1080",
        image="start_image_url",
        image_required=True,
        last_frame="end_image_url",
        negative_prompt=True,
        audio="generate_audio",
    ),
    # MiniMax Hailuo: 6 or 10 s; 768P (and 512P for image-to-video), upper-case P
    FalModel(
        "fal-ai/minimax/hailuo-2.3/standard/text-to-video",
        "https://fal.ai/models/fal-ai/minimax/hailuo-2.3/standard/text-to-video/llms.txt",
        seconds=frozenset({6, 10}),
        default_seconds=6,
        default_size="1366x768",
        aspect_ratios=frozenset({"16:9"}),
        resolutions=frozenset({"768p"}),
    ),
    FalModel(
        "fal-ai/minimax/hailuo-02/standard/image-to-video",
        "https://fal.ai/models/fal-ai/minimax/hailuo-02/standard/image-to-video/llms.txt",
        seconds=frozenset({6, 10}),
        default_seconds=6,
        default_size="1366x768",
        resolutions=frozenset({"512p", "768p"}),
        resolution_upper=True,
        image="image_url",
        image_required=True,
        last_frame="end_image_url",
    ),
    # Seedance 1.0 Pro: 2-12 s, six ratios, 480p-1080p
    FalModel(
        "fal-ai/bytedance/seedance/v1/pro/text-to-video",
        "https://fal.ai/docs/model-api-reference/video-generation-api/bytedance-seedance-v1-pro-text-to-video",
        seconds=_range(2, 12),
        default_seconds=5,
        default_size="1920x1080",
        aspect_ratios=_SEEDANCE_RATIOS,
        resolutions=frozenset({"480p", "720p", "1080p"}),
        seed=True,
    ),
    FalModel(
        "fal-ai/bytedance/seedance/v1/pro/fast/text-to-video",
        "https://fal.ai/models/fal-ai/bytedance/seedance/v1/pro/fast/text-to-video/llms.txt",
        seconds=_range(2, 12),
        default_seconds=5,
        default_size="1920x1080",
        aspect_ratios=_SEEDANCE_RATIOS,
        resolutions=frozenset({"480p", "720p", "1080p"}),
        seed=True,
    ),
    # Wan 2.6: 5/10/15 s, 720p or 1080p, five ratios
    FalModel(
        "wan/v2.6/text-to-video",
        "https://fal.ai/models/wan/v2.6/text-to-video/api",
        seconds=frozenset({5, 10, 15}),
        default_seconds=5,
        default_size="1280x720",
        aspect_ratios=frozenset({"16:9", "9:16", "1:1", "4:3", "3:4"}),
        resolutions=frozenset({"720p", "1080p"}),
    ),
)

FAL_MODELS: Mapping[str, FalModel] = {model.id: model for model in _TABLE}
"""The endpoints whose inputs :class:`~sora_tasks.providers.FalProvider` maps, by model id."""

_GENERIC_IMAGE = "image_url"


def capabilities_of(model: FalModel, base: ProviderCapabilities) -> ProviderCapabilities:
    """``base`` (the provider's pace and switches) narrowed to what ``model`` takes."""
    accepts_images = model.image is not None
    return base.model_copy(
        update={
            "models": frozenset({model.id}),
            "default_model": model.id,
            "seconds": model.seconds,
            "default_seconds": model.default_seconds,
            "default_size": model.default_size,
            "sizes": None,
            "aspect_ratios": model.aspect_ratios,
            "resolutions": model.resolutions,
            "image_upload": accepts_images,
            "image_url": accepts_images,
            "image_matches_size": False,
            "last_frame": model.last_frame is not None,
            "max_reference_images": model.max_reference_images,
            "negative_prompt": model.negative_prompt,
            "seed": model.seed,
            "audio": frozenset({True, False}) if model.audio else frozenset(),
        }
    )


def fal_input(
    request: SubmitRequest, model: FalModel | None, *, images: ImageMode = "data_uri"
) -> dict[str, JsonValue]:
    """The JSON input of one fal request: the mapped fields, then ``provider_options`` over them.

    ``model`` ``None`` (an endpoint outside the table) sends the prompt and the first frame (as
    ``image_url``) only; anything else goes in ``provider_options`` under the model's names.
    Raises :class:`InvalidRequestError` (nothing is sent) when the endpoint needs a first frame
    the request lacks, or an image cannot be sent as ``images`` says.
    """
    body: dict[str, JsonValue] = {"prompt": request.prompt}
    first = request.image if request.image is not None else request.image_url
    if model is None:
        _put_image(body, _GENERIC_IMAGE, first, images, "reference_image")
        body.update(request.provider_options)
        return body
    body["duration"] = model.duration.format(request.seconds)
    if model.aspect_ratios is not None and request.aspect_ratio is not None:
        body["aspect_ratio"] = request.aspect_ratio
    if model.resolutions is not None and request.resolution is not None:
        resolution = request.resolution
        body["resolution"] = resolution.upper() if model.resolution_upper else resolution
    if model.negative_prompt and request.negative_prompt is not None:
        body["negative_prompt"] = request.negative_prompt
    if model.seed and request.seed is not None:
        body["seed"] = request.seed
    if model.audio is not None and request.audio is not None:
        body[model.audio] = request.audio
    if model.image is not None:
        if first is None and model.image_required and model.image not in request.provider_options:
            raise InvalidRequestError(
                f"model {model.id} makes a video from an image: pass reference_image "
                f"(sent as {model.image})",
                field="reference_image",
            )
        _put_image(body, model.image, first, images, "reference_image")
    if model.last_frame is not None:
        _put_image(body, model.last_frame, request.last_frame, images, "last_frame")
    if model.reference_images is not None and request.reference_images:
        body[model.reference_images] = [
            image_value(image, images, "reference_images") for image in request.reference_images
        ]
    body.update(request.provider_options)
    return body


def image_value(image: ImageData | str, mode: ImageMode, field: str) -> str:
    """An image as fal takes it: a URL passed through, or bytes inlined as a data URI."""
    if isinstance(image, str):
        return image
    if mode == "url_only":
        raise InvalidRequestError(
            f"{field}: this provider is configured to send images by URL only "
            "(images='url_only'); pass an http(s) URL",
            field=field,
        )
    encoded = base64.b64encode(image.data).decode("ascii")
    return f"data:{image.mime_type};base64,{encoded}"


def _put_image(
    body: dict[str, JsonValue],
    name: str,
    image: ImageData | str | None,
    mode: ImageMode,
    field: str,
) -> None:
    if image is not None:
        body[name] = image_value(image, mode, field)
