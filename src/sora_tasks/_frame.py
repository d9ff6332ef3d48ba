"""The frame of a video: a size in pixels, or an aspect ratio and a resolution, each from the rest.

Providers disagree on how a frame is asked for: OpenAI-shaped APIs take ``1280x720``, Veo, fal and
Replicate take ``16:9`` with ``720p``, Runway takes ``1280:720``. A request may use either form;
:func:`complete_frame` fills in the rest so that every adapter finds the form its API speaks.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ._exceptions import InvalidRequestError

__all__ = ["Frame", "aspect_ratio_of", "complete_frame", "resolution_of", "size_of"]

_SIZE = re.compile(r"^([1-9][0-9]{1,4})x([1-9][0-9]{1,4})$")
_RATIO = re.compile(r"^([1-9][0-9]?):([1-9][0-9]?)$")
_RESOLUTION = re.compile(r"^(?:([1-9][0-9]{2,3})p|([1-9])k)$", re.IGNORECASE)

# ratios people and providers name; a size within 1 % of one is called by it (854x480 is 16:9)
_NAMED_RATIOS = (
    (21, 9), (16, 9), (7, 4), (3, 2), (4, 3), (5, 4), (1, 1),
    (4, 5), (3, 4), (2, 3), (4, 7), (9, 16), (9, 21),
)  # fmt: skip
_RATIO_TOLERANCE = 0.01
# the short side of the "K" resolutions, which name the long side of a 16:9 frame
_K_HEIGHTS = {2: 1080, 4: 2160, 8: 4320}
_K_NAMES = {height: f"{k}k" for k, height in _K_HEIGHTS.items() if k != 2}


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame, three ways: ``1280x720`` is ``16:9`` at ``720p``."""

    size: str
    aspect_ratio: str
    resolution: str


def parse_size(size: str) -> tuple[int, int]:
    """``"1280x720"`` → ``(1280, 720)``; anything else is an :class:`InvalidRequestError`."""
    match = _SIZE.match(size)
    if match is None:
        raise InvalidRequestError(
            f"size must look like WIDTHxHEIGHT in pixels (for example 1280x720), got {size!r}",
            field="size",
        )
    return int(match[1]), int(match[2])


def parse_aspect_ratio(ratio: str) -> tuple[int, int]:
    """``"16:9"`` → ``(16, 9)``; anything else is an :class:`InvalidRequestError`."""
    match = _RATIO.match(ratio)
    if match is None:
        raise InvalidRequestError(
            f"aspect_ratio must look like W:H with numbers under 100 (for example 16:9), "
            f"got {ratio!r}",
            field="aspect_ratio",
        )
    return int(match[1]), int(match[2])


def parse_resolution(resolution: str) -> int:
    """The short side in pixels: ``"720p"`` → 720, ``"4k"`` → 2160."""
    match = _RESOLUTION.match(resolution)
    if match is None or (match[2] is not None and int(match[2]) not in _K_HEIGHTS):
        raise InvalidRequestError(
            "resolution must look like 480p, 720p, 1080p or 4k, got " + repr(resolution),
            field="resolution",
        )
    return int(match[1]) if match[1] is not None else _K_HEIGHTS[int(match[2])]


def aspect_ratio_of(width: int, height: int) -> str:
    """The ratio's conventional name when it is within 1 % of one, else the reduced fraction."""
    exact = width / height
    for w, h in _NAMED_RATIOS:
        if abs(exact - w / h) <= _RATIO_TOLERANCE * (w / h):
            return f"{w}:{h}"
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}"


def resolution_of(width: int, height: int) -> str:
    """The resolution's name: the short side with ``p``, or ``4k`` / ``8k``."""
    short = min(width, height)
    return _K_NAMES.get(short, f"{short}p")


def size_of(aspect_ratio: str, resolution: str) -> str:
    """The nominal size of a frame: the short side from the resolution, the long side rounded
    to an even number of pixels (``16:9`` at ``480p`` is ``854x480``)."""
    w, h = parse_aspect_ratio(aspect_ratio)
    short = parse_resolution(resolution)
    long = 2 * round(short * max(w, h) / min(w, h) / 2)
    return f"{long}x{short}" if w >= h else f"{short}x{long}"


def complete_frame(
    *, size: str | None, aspect_ratio: str | None, resolution: str | None, default_size: str
) -> Frame:
    """The frame a request asks for, each form completed from the others.

    A ``size`` decides the frame; a ratio or resolution given beside it must agree with it.
    Without a size, what is missing of the ratio and resolution comes from ``default_size``.
    """
    if size is not None:
        width, height = parse_size(size)
        frame = Frame(size, aspect_ratio_of(width, height), resolution_of(width, height))
        for field, given, derived in (
            ("aspect_ratio", aspect_ratio, frame.aspect_ratio),
            ("resolution", resolution, frame.resolution),
        ):
            if given is not None and _normal(field, given) != derived:
                raise InvalidRequestError(
                    f"{field} {given!r} conflicts with size {size} (which is {derived}); "
                    "pass one or the other",
                    field=field,
                )
        return frame
    width, height = parse_size(default_size)
    ratio = _normal("aspect_ratio", aspect_ratio) if aspect_ratio else None
    named = _normal("resolution", resolution) if resolution else None
    ratio = ratio or aspect_ratio_of(width, height)
    named = named or resolution_of(width, height)
    return Frame(size_of(ratio, named), ratio, named)


def _normal(field: str, value: str) -> str:
    """The canonical spelling of a ratio or resolution (``16:9``, ``720p``, ``4k``)."""
    if field == "aspect_ratio":
        w, h = parse_aspect_ratio(value)
        return f"{w}:{h}"
    short = parse_resolution(value)
    return _K_NAMES.get(short, f"{short}p")
