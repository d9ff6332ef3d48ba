"""Input checks that run before anything is stored or sent.

Each failure raises its own :class:`InvalidRequestError` subclass with a message that names the
problem and the limit. Image types are sniffed from the bytes; a file name or a data URL's declared
type is never trusted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import imagesize

from ._exceptions import (
    ImageDimensionsError,
    ImageError,
    ImageTooLargeError,
    InvalidImageEncodingError,
    InvalidRequestError,
    PromptError,
    UnsupportedImageTypeError,
    UnsupportedParameterError,
)
from ._frame import parse_size
from ._models import GenerationRequest, ImageData, Limits, ReferenceImage
from .providers._base import ProviderCapabilities

__all__ = ["PreparedRequest", "decode_image", "parse_size", "prepare", "sniff_image_type"]

_MAX_ID_CHARS = 255
_PATH_HINT_CHARS = 4096


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """A request that passed every check, with provider defaults filled in and the image decoded."""

    prompt: str
    model: str
    size: str
    seconds: int
    image: ImageData | None
    image_url: str | None

    @property
    def reference_image(self) -> ReferenceImage | None:
        """The metadata stored on the task (never the bytes)."""
        if self.image is not None:
            image = self.image
            return ReferenceImage(
                sha256=image.sha256,
                mime_type=image.mime_type,
                byte_size=len(image.data),
                width=image.width,
                height=image.height,
            )
        if self.image_url is not None:
            return ReferenceImage(url=self.image_url)
        return None


def prepare(
    request: GenerationRequest, *, limits: Limits, capabilities: ProviderCapabilities, provider: str
) -> PreparedRequest:
    """Check ``request`` against ``limits`` and the provider's ``capabilities``."""
    prompt = _check_prompt(request.prompt, limits)
    _check_identifier("user_id", request.user_id)
    _check_metadata(request, limits)
    model = request.model if request.model is not None else capabilities.default_model
    size = request.size if request.size is not None else capabilities.default_size
    seconds = request.seconds if request.seconds is not None else capabilities.default_seconds
    width, height = parse_size(size)
    _check_offered(request, capabilities, provider, model=model, size=size, seconds=seconds)

    image: ImageData | None = None
    image_url: str | None = None
    if request.reference_image is not None:
        max_bytes = limits.max_image_bytes
        if capabilities.max_image_bytes is not None:
            max_bytes = min(max_bytes, capabilities.max_image_bytes)
        decoded = decode_image(request.reference_image, max_bytes=max_bytes)
        if isinstance(decoded, str):
            if not capabilities.image_url:
                raise UnsupportedParameterError(
                    f"provider {provider!r} does not accept image URLs; pass the image bytes, "
                    "a path or a data URL instead",
                    field="reference_image",
                )
            image_url = decoded
        else:
            if not capabilities.image_upload:
                raise UnsupportedParameterError(
                    f"provider {provider!r} does not accept reference images",
                    field="reference_image",
                )
            if (decoded.width, decoded.height) != (width, height):
                raise ImageDimensionsError(
                    f"reference image is {decoded.width}x{decoded.height} pixels; it must match "
                    f"the requested size {size}",
                    field="reference_image",
                    limit=size,
                )
            image = decoded
    return PreparedRequest(prompt, model, size, seconds, image, image_url)


def sniff_image_type(data: bytes) -> str | None:
    """The MIME type that the magic bytes announce, or ``None`` when they are not an image's."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:2] == b"BM":
        return "image/bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "image/heif"
    return None


_SUPPORTED = ("image/png", "image/jpeg", "image/webp")


def decode_image(source: bytes | os.PathLike[str] | str, *, max_bytes: int) -> ImageData | str:
    """Turn any accepted form of reference image into checked bytes; pass http(s) URLs through."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, os.PathLike):
        data = _read_file(Path(source), max_bytes)
    elif source.startswith(("http://", "https://")):
        return source
    elif source.startswith("data:"):
        data = _decode_data_url(source, max_bytes)
    elif len(source) < _PATH_HINT_CHARS and _looks_like_file(source):
        data = _read_file(Path(source), max_bytes)
    else:
        data = _decode_base64(source, max_bytes, what="reference image")
    return _check_image(data, max_bytes)


def _looks_like_file(source: str) -> bool:
    # base64 never contains a dot, so a dotted string is a file name, present or not
    return "." in source or Path(source).is_file()


def _read_file(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageTooLargeError(
                _too_large(size, max_bytes), field="reference_image", limit=max_bytes
            )
        with path.open("rb") as handle:
            return handle.read(max_bytes + 1)
    except OSError as exc:
        raise ImageError(
            f"cannot read reference image file {str(path)!r}: {exc.strerror or exc}",
            field="reference_image",
        ) from None


def _decode_data_url(source: str, max_bytes: int) -> bytes:
    header, comma, payload = source.partition(",")
    if not comma or not header.endswith(";base64"):
        raise InvalidImageEncodingError(
            "reference image data URL must look like data:image/png;base64,<data>",
            field="reference_image",
        )
    return _decode_base64(payload, max_bytes, what="reference image data URL")


def _decode_base64(text: str, max_bytes: int, *, what: str) -> bytes:
    compact = "".join(text.split())
    if len(compact) // 4 * 3 > max_bytes + 3:
        raise ImageTooLargeError(
            _too_large(len(compact) // 4 * 3, max_bytes), field="reference_image", limit=max_bytes
        )
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImageEncodingError(
            f"{what} is not valid base64", field="reference_image"
        ) from None


def _check_image(data: bytes, max_bytes: int) -> ImageData:
    if len(data) > max_bytes:
        raise ImageTooLargeError(
            _too_large(len(data), max_bytes), field="reference_image", limit=max_bytes
        )
    mime = sniff_image_type(data)
    if mime is None:
        raise UnsupportedImageTypeError(
            "reference image is not an image (its bytes are not PNG, JPEG or WebP)",
            field="reference_image",
        )
    if mime not in _SUPPORTED:
        raise UnsupportedImageTypeError(
            f"reference image is {mime}; only PNG, JPEG and WebP are accepted",
            field="reference_image",
            limit=_SUPPORTED,
        )
    width, height = imagesize.get(io.BytesIO(data))
    if width <= 0 or height <= 0:
        raise UnsupportedImageTypeError(
            f"reference image looks like {mime} but its header is damaged (no pixel size)",
            field="reference_image",
        )
    return ImageData(data, mime, width, height, hashlib.sha256(data).hexdigest())


def _too_large(size: int, limit: int) -> str:
    return (
        f"reference image is {size:,} bytes decoded; the limit is {limit:,} bytes "
        f"({limit / 1024 / 1024:.1f} MiB)"
    )


def _check_prompt(prompt: str, limits: Limits) -> str:
    stripped = prompt.strip()
    if not stripped:
        raise PromptError("prompt is required and must not be blank", field="prompt", limit=1)
    if len(stripped) > limits.max_prompt_chars:
        raise PromptError(
            f"prompt is {len(stripped):,} characters; the limit is {limits.max_prompt_chars:,}",
            field="prompt",
            limit=limits.max_prompt_chars,
        )
    if "\x00" in stripped:
        raise PromptError("prompt must not contain NUL characters", field="prompt")
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


def _check_metadata(request: GenerationRequest, limits: Limits) -> None:
    encoded = json.dumps(request.metadata, separators=(",", ":"))
    if len(encoded.encode()) > limits.max_metadata_bytes:
        raise InvalidRequestError(
            f"metadata is {len(encoded.encode()):,} bytes as JSON; the limit is "
            f"{limits.max_metadata_bytes:,}",
            field="metadata",
            limit=limits.max_metadata_bytes,
        )
    if "\\u0000" in encoded:
        raise InvalidRequestError("metadata must not contain NUL characters", field="metadata")


def _check_offered(
    request: GenerationRequest,
    capabilities: ProviderCapabilities,
    provider: str,
    *,
    model: str,
    size: str,
    seconds: int,
) -> None:
    if request.media_type not in capabilities.media_types:
        raise UnsupportedParameterError(
            f"provider {provider!r} does not generate {request.media_type.value}",
            field="media_type",
            limit=sorted(capabilities.media_types),
        )
    if request.allow_unsupported:
        return
    offered: tuple[tuple[str, object, frozenset[str] | frozenset[int] | None], ...] = (
        ("model", model, capabilities.models),
        ("size", size, capabilities.sizes),
        ("seconds", seconds, capabilities.seconds),
    )
    for field, value, allowed in offered:
        if allowed is not None and value not in allowed:
            choices = ", ".join(str(choice) for choice in sorted(allowed))
            raise UnsupportedParameterError(
                f"{field} {value!r} is not offered by provider {provider!r} (offered: {choices}); "
                "pass allow_unsupported=True to send it anyway",
                field=field,
                limit=sorted(allowed),
            )
