"""Images given as input: decoded from any accepted form, their type sniffed from the bytes.

A file name or a data URL's declared type is never trusted; every failure is an
:class:`ImageError` naming the input (``reference_image``, ``last_frame``, ...) and the limit.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import imagesize

from ._exceptions import (
    ImageError,
    ImageTooLargeError,
    InvalidImageEncodingError,
    UnsupportedImageTypeError,
)
from ._models import ImageData

__all__ = ["decode_image", "sniff_image_type"]

_PATH_HINT_CHARS = 4096


@dataclass(frozen=True, slots=True)
class _Where:
    """The input an image came in: its field name, and how a message calls it."""

    field: str

    @property
    def label(self) -> str:
        name = self.field.split("[", 1)[0].replace("_", " ").removesuffix("s")
        index = self.field.partition("[")[2].rstrip("]")
        return f"{name} {int(index) + 1}" if index else name


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


def decode_image(
    source: bytes | os.PathLike[str] | str, *, max_bytes: int, field: str = "reference_image"
) -> ImageData | str:
    """Turn any accepted form of image into checked bytes; pass http(s) URLs through.

    ``field`` names the input in error messages (``last_frame``, ``reference_images[1]``).
    """
    where = _Where(field)
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, os.PathLike):
        data = _read_file(Path(source), max_bytes, where)
    elif source.startswith(("http://", "https://")):
        return source
    elif source.startswith("data:"):
        data = _decode_data_url(source, max_bytes, where)
    elif len(source) < _PATH_HINT_CHARS and _looks_like_file(source):
        data = _read_file(Path(source), max_bytes, where)
    else:
        data = _decode_base64(source, max_bytes, where, what=where.label)
    return _check_image(data, max_bytes, where)


def _looks_like_file(source: str) -> bool:
    # base64 never contains a dot, so a dotted string is a file name, present or not
    return "." in source or Path(source).is_file()


def _read_file(path: Path, max_bytes: int, where: _Where) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageTooLargeError(
                _too_large(size, max_bytes, where), field=where.field, limit=max_bytes
            )
        with path.open("rb") as handle:
            return handle.read(max_bytes + 1)
    except OSError as exc:
        raise ImageError(
            f"cannot read {where.label} file {str(path)!r}: {exc.strerror or exc}",
            field=where.field,
        ) from None


def _decode_data_url(source: str, max_bytes: int, where: _Where) -> bytes:
    header, comma, payload = source.partition(",")
    if not comma or not header.endswith(";base64"):
        raise InvalidImageEncodingError(
            f"{where.label} data URL must look like data:image/png;base64,<data>",
            field=where.field,
        )
    return _decode_base64(payload, max_bytes, where, what=f"{where.label} data URL")


def _decode_base64(text: str, max_bytes: int, where: _Where, *, what: str) -> bytes:
    compact = "".join(text.split())
    if len(compact) // 4 * 3 > max_bytes + 3:
        raise ImageTooLargeError(
            _too_large(len(compact) // 4 * 3, max_bytes, where), field=where.field, limit=max_bytes
        )
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImageEncodingError(f"{what} is not valid base64", field=where.field) from None


def _check_image(data: bytes, max_bytes: int, where: _Where) -> ImageData:
    if len(data) > max_bytes:
        raise ImageTooLargeError(
            _too_large(len(data), max_bytes, where), field=where.field, limit=max_bytes
        )
    mime = sniff_image_type(data)
    if mime is None:
        raise UnsupportedImageTypeError(
            f"{where.label} is not an image (its bytes are not PNG, JPEG or WebP)",
            field=where.field,
        )
    if mime not in _SUPPORTED:
        raise UnsupportedImageTypeError(
            f"{where.label} is {mime}; only PNG, JPEG and WebP are accepted",
            field=where.field,
            limit=_SUPPORTED,
        )
    width, height = imagesize.get(io.BytesIO(data))
    if width <= 0 or height <= 0:
        raise UnsupportedImageTypeError(
            f"{where.label} looks like {mime} but its header is damaged (no pixel size)",
            field=where.field,
        )
    return ImageData(data, mime, width, height, hashlib.sha256(data).hexdigest())


def _too_large(size: int, limit: int, where: _Where) -> str:
    return (
        f"{where.label} is {size:,} bytes decoded; the limit is {limit:,} bytes "
        f"({limit / 1024 / 1024:.1f} MiB)"
    )
