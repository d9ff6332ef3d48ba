"""The video models Replicate hosts that the adapter knows: their input fields and the values
they take, and the mapping of a :class:`SubmitRequest` onto a model's ``input``.

Each model on Replicate has its own input schema (the model page's "API" tab). The entries below
come from those pages; a model missing here is still reachable with ``provider_options`` holding
its own input.

Sources (input schema pages, read 2026-11-30):

- ``google/veo-3.1``: https://replicate.com/google/veo-3.1/versions/ed5b1767b711dd15d954b162af1e890d27882680f463a85e94f02d604012b972/api
- ``google/veo-3.1-fast``: https://replicate.com/google/veo-3.1-fast (no reference images;
  values as listed by https://api.core.today/v1/models/google/veo-3.1-fast/llms.txt, secondary)
- ``minimax/hailuo-02``: https://replicate.com/minimax/hailuo-02/versions/c43b610efe40d08a28d2c07cb3515dab1cd3324dfc7418f3304a092571071d22/api
- ``minimax/hailuo-2.3``: https://replicate.com/minimax/hailuo-2.3/versions/23a02633b5a44780345a59d4d43f8bd510efa239c56f08f29639ff24fa6615e1/api
- ``bytedance/seedance-2.0``: https://replicate.com/bytedance/seedance-2.0/versions/d456b64a60da3903c3692f7128d491004d021bbc2e1e19c63bccb117d3f4ab7b/api
- ``bytedance/seedance-1-pro``: https://replicate.com/bytedance/seedance-1-pro (values as listed by
  https://docs.skills.video/api-reference/seedance-1-pro, secondary)
- ``kwaivgi/kling-v2.5-turbo-pro``: https://replicate.com/kwaivgi/kling-v2.5-turbo-pro (values as
  listed by https://api.core.today/v1/models/kwaivgi/kling-v2.5-turbo-pro/llms.txt, secondary)
- ``wan-video/wan-2.5-t2v``: https://replicate.com/wan-video/wan-2.5-t2v (``size`` as ``W*H``;
  values as listed by https://novita.ai/docs/api-reference/model-apis-wan2.5-t2v, secondary)
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from pydantic import JsonValue

from .._exceptions import InvalidRequestError
from .._models import ImageData
from ._base import ProviderCapabilities, SubmitRequest

__all__ = ["REPLICATE_MODELS", "ReplicateModel", "model_input"]

FrameFields = Literal["ratio_resolution", "ratio", "resolution", "size_star"]


@dataclass(frozen=True, slots=True)
class ReplicateModel:
    """One model's input schema, as far as the common request fields go.

    ``frame`` says how the frame is asked for: ``aspect_ratio`` and ``resolution`` fields, only
    one of them, or a ``size`` field written ``W*H`` (``size_star``). A field name of ``None``
    means the model has no such input. ``sizes`` lists the sizes a ``size_star`` model takes.
    """

    seconds: frozenset[int]
    default_seconds: int
    default_size: str
    aspect_ratios: frozenset[str] | None = None
    resolutions: frozenset[str] | None = None
    sizes: frozenset[str] | None = None
    frame: FrameFields = "ratio_resolution"
    duration_field: str = "duration"
    image_field: str | None = "image"
    last_frame_field: str | None = None
    reference_images_field: str | None = None
    max_reference_images: int = 0
    negative_prompt_field: str | None = None
    seed_field: str | None = None
    audio_field: str | None = None

    def capabilities(self, model: str) -> ProviderCapabilities:
        """What this model accepts, in the library's terms."""
        return ProviderCapabilities(
            models=frozenset({model}),
            sizes=self.sizes,
            seconds=self.seconds,
            aspect_ratios=self.aspect_ratios,
            resolutions=self.resolutions,
            default_model=model,
            default_size=self.default_size,
            default_seconds=self.default_seconds,
            image_upload=self.image_field is not None,
            image_url=self.image_field is not None,
            image_matches_size=False,  # these models fit the first frame to the output themselves
            last_frame=self.last_frame_field is not None,
            max_reference_images=self.max_reference_images,
            negative_prompt=self.negative_prompt_field is not None,
            seed=self.seed_field is not None,
            audio=frozenset({True, False}) if self.audio_field else frozenset(),
            provider_options=True,
            can_cancel=True,
            can_list=True,
        )


_VEO_FAST = ReplicateModel(
    seconds=frozenset({4, 6, 8}),
    default_seconds=8,
    default_size="1280x720",
    aspect_ratios=frozenset({"16:9", "9:16"}),
    resolutions=frozenset({"720p", "1080p"}),
    last_frame_field="last_frame",
    negative_prompt_field="negative_prompt",
    seed_field="seed",
    audio_field="generate_audio",
)

REPLICATE_MODELS: Mapping[str, ReplicateModel] = {
    "google/veo-3.1": replace(
        _VEO_FAST,
        default_size="1920x1080",
        reference_images_field="reference_images",
        max_reference_images=3,
    ),
    "google/veo-3.1-fast": _VEO_FAST,
    "kwaivgi/kling-v2.5-turbo-pro": ReplicateModel(
        seconds=frozenset({5, 10}),
        default_seconds=5,
        default_size="1920x1080",
        aspect_ratios=frozenset({"16:9", "9:16", "1:1"}),
        resolutions=frozenset({"1080p"}),
        frame="ratio",
        image_field="start_image",
        negative_prompt_field="negative_prompt",
    ),
    "minimax/hailuo-02": ReplicateModel(
        seconds=frozenset({6, 10}),
        default_seconds=6,
        default_size="1920x1080",
        aspect_ratios=frozenset({"16:9"}),  # without a first frame; with one, the frame's ratio
        resolutions=frozenset({"512p", "768p", "1080p"}),
        frame="resolution",
        image_field="first_frame_image",
        last_frame_field="last_frame_image",
    ),
    "minimax/hailuo-2.3": ReplicateModel(
        seconds=frozenset({6, 10}),
        default_seconds=6,
        default_size="1366x768",
        aspect_ratios=frozenset({"16:9"}),
        resolutions=frozenset({"768p", "1080p"}),
        frame="resolution",
        image_field="first_frame_image",
    ),
    "bytedance/seedance-1-pro": ReplicateModel(
        seconds=frozenset(range(2, 13)),
        default_seconds=5,
        default_size="1920x1080",
        aspect_ratios=frozenset({"16:9", "4:3", "1:1", "3:4", "9:16", "21:9"}),
        resolutions=frozenset({"480p", "720p", "1080p"}),
        last_frame_field="last_frame_image",
        seed_field="seed",
    ),
    "bytedance/seedance-2.0": ReplicateModel(
        seconds=frozenset(range(4, 16)),
        default_seconds=5,
        default_size="1280x720",
        aspect_ratios=frozenset({"16:9", "4:3", "1:1", "3:4", "9:16", "21:9"}),
        resolutions=frozenset({"480p", "720p", "1080p"}),
        last_frame_field="last_frame_image",
        reference_images_field="reference_images",
        max_reference_images=9,
        seed_field="seed",
        audio_field="generate_audio",
    ),
    "wan-video/wan-2.5-t2v": ReplicateModel(
        seconds=frozenset({5, 10}),
        default_seconds=5,
        default_size="1280x720",
        sizes=frozenset({"832x480", "480x832", "1280x720", "720x1280", "1920x1080", "1080x1920"}),
        frame="size_star",
        image_field=None,
        negative_prompt_field="negative_prompt",
        seed_field="seed",
    ),
}
"""The well-known video models, by ``owner/name``."""


def model_input(spec: ReplicateModel | None, request: SubmitRequest) -> dict[str, JsonValue]:
    """The prediction's ``input`` for ``request``: the mapped fields, then ``provider_options``.

    For a model the table does not know (``spec`` is ``None``) only the prompt is mapped; its
    other inputs must come in ``provider_options``, under the model's own names.
    """
    fields: dict[str, JsonValue] = {"prompt": request.prompt}
    if spec is None:
        _refuse_unmapped(request)
        fields.update(request.provider_options)
        return fields
    fields[spec.duration_field] = request.seconds
    if spec.frame in ("ratio_resolution", "ratio") and request.aspect_ratio is not None:
        fields["aspect_ratio"] = request.aspect_ratio
    if spec.frame in ("ratio_resolution", "resolution") and request.resolution is not None:
        fields["resolution"] = request.resolution
    if spec.frame == "size_star":
        fields["size"] = request.size.replace("x", "*")
    first = request.image if request.image is not None else request.image_url
    _put(fields, spec.image_field, first, "reference_image")
    _put(fields, spec.last_frame_field, request.last_frame, "last_frame")
    if request.reference_images:
        if spec.reference_images_field is None:
            raise _unmapped("reference_images")
        fields[spec.reference_images_field] = [image_value(i) for i in request.reference_images]
    _put(fields, spec.negative_prompt_field, request.negative_prompt, "negative_prompt")
    _put(fields, spec.seed_field, request.seed, "seed")
    _put(fields, spec.audio_field, request.audio, "audio")
    fields.update(request.provider_options)
    return fields


def image_value(image: ImageData | str) -> str:
    """An image as Replicate takes it: a URL passed through, or the bytes as a data URI."""
    if isinstance(image, str):
        return image
    encoded = base64.b64encode(image.data).decode("ascii")
    return f"data:{image.mime_type};base64,{encoded}"


def _put(
    fields: dict[str, JsonValue],
    name: str | None,
    value: ImageData | str | int | bool | None,
    common: str,
) -> None:
    if value is None:
        return
    if name is None:
        raise _unmapped(common)
    fields[name] = image_value(value) if isinstance(value, ImageData) else value


def _refuse_unmapped(request: SubmitRequest) -> None:
    given = {
        "reference_image": request.image is not None or request.image_url is not None,
        "last_frame": request.last_frame is not None,
        "reference_images": bool(request.reference_images),
        "negative_prompt": request.negative_prompt is not None,
        "seed": request.seed is not None,
        "audio": request.audio is not None,
    }
    for name, present in given.items():
        if present:
            raise InvalidRequestError(
                f"model {request.model!r} is not in the Replicate adapter's table, so {name} "
                "cannot be mapped onto its input; pass it in provider_options under the "
                "model's own field name",
                field=name,
            )


def _unmapped(common: str) -> InvalidRequestError:
    return InvalidRequestError(f"this Replicate model takes no {common}", field=common)
