"""What the conformance kit builds without pytest: requests, images, a closed port, and the
search for a secret in everything a run produced."""

from __future__ import annotations

import itertools
import logging
import secrets
import socket
import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from .._frame import Frame, complete_frame
from .._models import ImageData, new_task_id
from .._validation import decode_image
from ..providers._base import ProviderCapabilities, ProviderJob, SubmitRequest

__all__ = [
    "closed_port_url",
    "frames_to_try",
    "leaks",
    "make_image",
    "make_request",
    "png",
]

_prompts = itertools.count(1)
_MAX_IMAGE_BYTES = 20 * 1024 * 1024


def png(width: int, height: int, shade: int = 128) -> bytes:
    """A valid grey PNG of ``width`` x ``height`` pixels (``shade`` 0-255 tells images apart)."""
    row = b"\x00" + bytes([shade % 256]) * width  # filter byte "none", then one byte a pixel
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(row * height, 9)),
            _chunk(b"IEND", b""),
        )
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def make_image(size: str, shade: int = 128) -> ImageData:
    """A checked image of ``size`` (``1280x720``), as the manager hands one to an adapter."""
    width, _, height = size.partition("x")
    image = decode_image(png(int(width), int(height), shade), max_bytes=_MAX_IMAGE_BYTES)
    assert isinstance(image, ImageData)
    return image


def make_request(
    capabilities: ProviderCapabilities,
    model: str,
    *,
    size: str | None = None,
    aspect_ratio: str | None = None,
    resolution: str | None = None,
    seconds: int | None = None,
    **fields: Any,
) -> SubmitRequest:
    """A create as the manager would hand it over: the frame completed, defaults filled in."""
    frame = complete_frame(
        size=size,
        aspect_ratio=aspect_ratio,
        resolution=resolution,
        default_size=capabilities.default_size,
    )
    return SubmitRequest(
        task_id=new_task_id(),
        idempotency_key=f"conformance_{secrets.token_hex(8)}",
        prompt=f"a lighthouse at dusk, waves breaking (conformance kit, take {next(_prompts)})",
        model=model,
        size=frame.size,
        aspect_ratio=frame.aspect_ratio,
        resolution=frame.resolution,
        seconds=capabilities.default_seconds if seconds is None else seconds,
        **fields,
    )


def frames_to_try(capabilities: ProviderCapabilities) -> list[Frame]:
    """Every frame the capabilities name, or the default one and its transpose when any goes."""
    default = complete_frame(
        size=None, aspect_ratio=None, resolution=None, default_size=capabilities.default_size
    )
    if capabilities.sizes is not None:
        default_size = capabilities.default_size
        return [_frame(size=size, default=default_size) for size in sorted(capabilities.sizes)]
    if capabilities.aspect_ratios is not None or capabilities.resolutions is not None:
        ratios = sorted(capabilities.aspect_ratios or {default.aspect_ratio})
        resolutions = sorted(capabilities.resolutions or {default.resolution})
        return [
            _frame(aspect_ratio=ratio, resolution=resolution, default=capabilities.default_size)
            for ratio in ratios
            for resolution in resolutions
        ]
    width, _, height = default.size.partition("x")
    return [default, _frame(size=f"{height}x{width}", default=capabilities.default_size)]


def _frame(
    *,
    default: str,
    size: str | None = None,
    aspect_ratio: str | None = None,
    resolution: str | None = None,
) -> Frame:
    return complete_frame(
        size=size, aspect_ratio=aspect_ratio, resolution=resolution, default_size=default
    )


def closed_port_url() -> str:
    """``http://127.0.0.1:<port>`` for a port nothing listens on: connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def leaks(
    secret: str,
    *,
    jobs: Iterable[ProviderJob],
    errors: Iterable[BaseException],
    records: Iterable[logging.LogRecord],
    reprs: Iterable[str],
) -> list[str]:
    """Where ``secret`` shows: in a job, an error of the chain, a log record or a repr."""
    formatter = logging.Formatter()
    found = [f"job {job.external_id!r}" for job in jobs if secret in _job_text(job)]
    found += [
        f"{type(link).__name__} raised as {type(error).__name__}"
        for error in errors
        for link in _chain(error)
        if secret in str(link) or secret in repr(link)
    ]
    found += [
        f"log record {record.name}: {_masked(str(record.msg), secret)!r}"
        for record in records
        if secret in formatter.format(record) or secret in repr(vars(record))
    ]
    found.extend(f"repr {_masked(text, secret)!r}" for text in reprs if secret in text)
    return found


def _job_text(job: ProviderJob) -> str:
    return job.model_dump_json() + repr(job)


def _masked(text: str, secret: str) -> str:
    # a report of the leak must not leak it once more
    return text.replace(secret, "<the secret>")


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__
