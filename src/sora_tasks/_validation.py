"""Input checks that run before anything is stored or sent.

Each failure raises its own :class:`InvalidRequestError` subclass with a message that names the
problem and the limit. A request is checked against the capabilities of the model it names (an
adapter that reaches many models declares each one's), after its frame is completed from whichever
of size, aspect ratio and resolution it gave.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from pydantic import JsonValue

from ._exceptions import (
    ImageDimensionsError,
    InvalidRequestError,
    PromptError,
    UnsupportedParameterError,
)
from ._frame import Frame, complete_frame, parse_size
from ._images import decode_image, sniff_image_type
from ._models import GenerationRequest, ImageData, Limits, MediaType, ReferenceImage
from .providers._base import Provider, ProviderCapabilities, SubmitRequest

__all__ = ["PreparedRequest", "decode_image", "parse_size", "prepare", "sniff_image_type"]

_MAX_ID_CHARS = 255

InputImage = ImageData | str
"""A checked image: its bytes, or an http(s) URL passed through."""
ImageSource = bytes | os.PathLike[str] | str


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """A request that passed every check: defaults filled in, frame completed, images decoded."""

    prompt: str
    model: str
    frame: Frame
    seconds: int
    image: InputImage | None
    negative_prompt: str | None = None
    seed: int | None = None
    audio: bool | None = None
    last_frame: InputImage | None = None
    reference_images: tuple[InputImage, ...] = ()
    provider_options: dict[str, JsonValue] | None = None

    @property
    def images(self) -> list[ImageData]:
        """Every image whose bytes the store keeps, once per distinct content."""
        found = (self.image, self.last_frame, *self.reference_images)
        unique = {image.sha256: image for image in found if isinstance(image, ImageData)}
        return list(unique.values())


def describe(image: InputImage | None) -> ReferenceImage | None:
    """The metadata stored on the task for an input image (never the bytes)."""
    if image is None:
        return None
    if isinstance(image, str):
        return ReferenceImage(url=image)
    return ReferenceImage(
        sha256=image.sha256,
        mime_type=image.mime_type,
        byte_size=len(image.data),
        width=image.width,
        height=image.height,
    )


def prepare(
    request: GenerationRequest, *, limits: Limits, provider: Provider, name: str
) -> PreparedRequest:
    """Check ``request`` against ``limits`` and the capabilities of the model it asks for."""
    prompt = _check_text("prompt", request.prompt, limits, required=True)
    negative = _check_text("negative_prompt", request.negative_prompt, limits, required=False)
    _check_identifier("user_id", request.user_id)
    _check_json("metadata", request.metadata, limits.max_metadata_bytes)
    _check_json("provider_options", request.provider_options, limits.max_provider_options_bytes)
    model = request.model if request.model is not None else provider.capabilities.default_model
    capabilities, known = _model_capabilities(request, provider, name, model)
    seconds = request.seconds if request.seconds is not None else capabilities.default_seconds
    frame = complete_frame(
        size=request.size,
        aspect_ratio=request.aspect_ratio,
        resolution=request.resolution,
        default_size=capabilities.default_size,
    )
    where = f"model {model!r} of provider {name!r}"
    if request.media_type not in capabilities.media_types:
        raise UnsupportedParameterError(
            f"{where} does not generate {request.media_type.value}",
            field="media_type",
            limit=sorted(capabilities.media_types),
        )
    if known and not request.allow_unsupported:
        _check_offered(capabilities, where, frame, seconds)
    _check_fields(request, capabilities, where, known)

    images = _Images(limits, capabilities, where)
    first = images.decode("reference_image", request.reference_image)
    if isinstance(first, ImageData) and capabilities.image_matches_size:
        width, height = parse_size(frame.size)
        if (first.width, first.height) != (width, height):
            raise ImageDimensionsError(
                f"reference image is {first.width}x{first.height} pixels; it must match "
                f"the requested size {frame.size}",
                field="reference_image",
                limit=frame.size,
            )
    prepared = PreparedRequest(
        prompt=prompt,
        model=model,
        frame=frame,
        seconds=seconds,
        image=first,
        negative_prompt=negative or None,
        seed=request.seed,
        audio=request.audio,
        last_frame=images.decode("last_frame", request.last_frame),
        reference_images=tuple(images.decode_all("reference_images", request.reference_images)),
        provider_options=dict(request.provider_options),
    )
    if known:
        provider.check(_as_submit(prepared, request.media_type))
    return prepared


def _as_submit(prepared: PreparedRequest, media_type: MediaType) -> SubmitRequest:
    """The create the request will become, for :meth:`Provider.check` (no task exists yet)."""
    first = prepared.image
    return SubmitRequest(
        task_id="",
        idempotency_key="",
        prompt=prepared.prompt,
        model=prepared.model,
        size=prepared.frame.size,
        aspect_ratio=prepared.frame.aspect_ratio,
        resolution=prepared.frame.resolution,
        seconds=prepared.seconds,
        media_type=media_type,
        image=first if isinstance(first, ImageData) else None,
        image_url=first if isinstance(first, str) else None,
        negative_prompt=prepared.negative_prompt,
        seed=prepared.seed,
        audio=prepared.audio,
        last_frame=prepared.last_frame,
        reference_images=prepared.reference_images,
        provider_options=prepared.provider_options or {},
    )


def _model_capabilities(
    request: GenerationRequest, provider: Provider, name: str, model: str
) -> tuple[ProviderCapabilities, bool]:
    """The model's capabilities, and whether the adapter knows the model at all."""
    capabilities = provider.capabilities_for(model)
    if capabilities is not None:
        return capabilities, True
    if not request.provider_options and not request.allow_unsupported:
        offered = provider.capabilities.models
        choices = f" (offered: {', '.join(sorted(offered))})" if offered else ""
        raise UnsupportedParameterError(
            f"model {model!r} is not offered by provider {name!r}{choices}; pass the model's own "
            "input as provider_options={...}, or allow_unsupported=True, to send it anyway",
            field="model",
            limit=sorted(offered) if offered else None,
        )
    return provider.capabilities, False


def _check_offered(
    capabilities: ProviderCapabilities, where: str, frame: Frame, seconds: int
) -> None:
    offered: tuple[tuple[str, object, Collection[object] | None], ...] = (
        ("size", frame.size, capabilities.sizes),
        ("aspect_ratio", frame.aspect_ratio, capabilities.aspect_ratios),
        ("resolution", frame.resolution, capabilities.resolutions),
        ("seconds", seconds, capabilities.seconds),
    )
    for field, value, allowed in offered:
        if allowed is not None and value not in allowed:
            choices = sorted(allowed, key=_natural)
            raise UnsupportedParameterError(
                f"{field} {value!r} is not offered by {where} (offered: "
                f"{', '.join(str(choice) for choice in choices)}); pass allow_unsupported=True "
                "to send it anyway",
                field=field,
                limit=choices,
            )


def _natural(value: object) -> tuple[int, str]:
    """Sort 480p before 1080p and 4 before 12: by the leading number, then the text."""
    text = str(value)
    digits = text[: len(text) - len(text.lstrip("0123456789"))]
    return (int(digits) if digits else 0, text)


def _check_fields(
    request: GenerationRequest, capabilities: ProviderCapabilities, where: str, known: bool
) -> None:
    """Refuse the optional fields this model cannot take: they would be dropped unseen."""
    hint = (
        ""
        if known
        else " (the adapter does not know this model, so only the prompt, the first frame and "
        "provider_options are sent: put the field in provider_options under the model's own name)"
    )
    given: tuple[tuple[str, bool, bool], ...] = (
        ("negative_prompt", request.negative_prompt is not None, capabilities.negative_prompt),
        ("seed", request.seed is not None, capabilities.seed),
        ("last_frame", request.last_frame is not None, capabilities.last_frame),
        ("provider_options", bool(request.provider_options), capabilities.provider_options),
    )
    for field, present, accepted in given:
        if present and not (accepted and (known or field == "provider_options")):
            raise UnsupportedParameterError(f"{where} does not take {field}{hint}", field=field)
    if request.audio is not None and (not known or request.audio not in capabilities.audio):
        if known and capabilities.audio:
            allowed = sorted(capabilities.audio)
            raise UnsupportedParameterError(
                f"audio={request.audio} is not offered by {where} (offered: "
                f"{', '.join(str(value) for value in allowed)})",
                field="audio",
                limit=allowed,
            )
        raise UnsupportedParameterError(f"{where} has no audio switch{hint}", field="audio")
    count = len(request.reference_images)
    most = capabilities.max_reference_images if known else 0
    if count > most:
        if most == 0:
            raise UnsupportedParameterError(
                f"{where} does not take reference_images{hint}", field="reference_images", limit=0
            )
        raise UnsupportedParameterError(
            f"{count} reference_images given; {where} takes at most {most}",
            field="reference_images",
            limit=most,
        )


class _Images:
    """Decodes a request's images, each checked against the model's image rules."""

    def __init__(self, limits: Limits, capabilities: ProviderCapabilities, where: str) -> None:
        self._max_bytes = limits.max_image_bytes
        if capabilities.max_image_bytes is not None:
            self._max_bytes = min(self._max_bytes, capabilities.max_image_bytes)
        self._capabilities = capabilities
        self._where = where

    def decode(self, field: str, source: ImageSource | None) -> InputImage | None:
        if source is None:
            return None
        decoded = decode_image(source, max_bytes=self._max_bytes, field=field)
        if isinstance(decoded, str):
            if not self._capabilities.image_url:
                raise UnsupportedParameterError(
                    f"{self._where} does not accept image URLs; pass the image bytes, a path "
                    "or a data URL instead",
                    field=field,
                )
        elif not self._capabilities.image_upload:
            raise UnsupportedParameterError(
                f"{self._where} does not accept uploaded images", field=field
            )
        return decoded

    def decode_all(self, field: str, sources: Iterable[ImageSource]) -> Iterable[InputImage]:
        for index, source in enumerate(sources):
            decoded = self.decode(f"{field}[{index}]", source)
            assert decoded is not None
            yield decoded


def _check_text(field: str, text: str | None, limits: Limits, *, required: bool) -> str:
    stripped = (text or "").strip()
    if required and not stripped:
        raise PromptError(f"{field} is required and must not be blank", field=field, limit=1)
    if len(stripped) > limits.max_prompt_chars:
        raise PromptError(
            f"{field} is {len(stripped):,} characters; the limit is {limits.max_prompt_chars:,}",
            field=field,
            limit=limits.max_prompt_chars,
        )
    if "\x00" in stripped:
        raise PromptError(f"{field} must not contain NUL characters", field=field)
    return stripped


def _check_identifier(field: str, value: str | None) -> None:
    if value is None:
        return
    if not value or len(value) > _MAX_ID_CHARS or "\x00" in value:
        raise InvalidRequestError(
            f"{field} must be 1 to {_MAX_ID_CHARS} characters without NUL, got {len(value)}",
            field=field,
            limit=_MAX_ID_CHARS,
        )


def _check_json(field: str, value: object, limit: int) -> None:
    encoded = json.dumps(value, separators=(",", ":"))
    size = len(encoded.encode())
    if size > limit:
        raise InvalidRequestError(
            f"{field} is {size:,} bytes as JSON; the limit is {limit:,}", field=field, limit=limit
        )
    if "\\u0000" in encoded:
        raise InvalidRequestError(f"{field} must not contain NUL characters", field=field)
