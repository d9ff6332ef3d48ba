"""What a simulator is told at creation: timings, progress curve, validation sets, content."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import Literal

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_SECONDS",
    "DEFAULT_SIZES",
    "Content",
    "ProgressCurve",
    "SimulatorConfig",
    "compile_fail_prompts",
    "resolve_curve",
    "synthetic_block",
]

ProgressCurve = Callable[[float], float]
"""Maps the elapsed fraction of a render (0 to 1) to the fraction of progress reported (0 to 1)."""

CurveName = Literal["linear", "ease_in", "ease_out", "ease_in_out"]

_CURVES: dict[str, ProgressCurve] = {
    "linear": lambda x: x,
    "ease_in": lambda x: x * x,
    "ease_out": lambda x: 1 - (1 - x) ** 2,
    "ease_in_out": lambda x: x * x * (3 - 2 * x),
}

DEFAULT_MODELS = frozenset(
    {"sora-2", "sora-2-pro", "sora-2-2025-10-06", "sora-2-pro-2025-10-06", "sora-2-2025-12-08"}
)
DEFAULT_SIZES = frozenset({"720x1280", "1280x720", "1024x1792", "1792x1024"})
DEFAULT_SECONDS = frozenset({"4", "8", "12"})

_CHUNK = 1024 * 1024


def resolve_curve(curve: ProgressCurve | CurveName) -> ProgressCurve:
    """Turn a curve name into its function; a callable passes through."""
    if callable(curve):
        return curve
    try:
        return _CURVES[curve]
    except KeyError:
        raise ValueError(
            f"unknown progress curve {curve!r}; choose one of {sorted(_CURVES)}"
        ) from None


def compile_fail_prompts(patterns: Iterable[str | re.Pattern[str]]) -> tuple[re.Pattern[str], ...]:
    """Plain strings match as case-insensitive substrings; compiled patterns are searched as is."""
    return tuple(
        p if isinstance(p, re.Pattern) else re.compile(re.escape(p), re.IGNORECASE)
        for p in patterns
    )


@dataclass(frozen=True, slots=True)
class Content:
    """What every finished job serves: the shipped sample MP4, given bytes, or a synthetic body.

    A synthetic body (``size`` set, ``data`` empty) is generated chunk by chunk from one repeated
    block, so a 1 GiB download never holds more than one block in memory.
    """

    data: bytes = field(repr=False)
    size: int

    @classmethod
    def sample(cls) -> Content:
        """The small valid MP4 shipped with the package."""
        data = resources.files("sora_tasks.testing").joinpath("sample.mp4").read_bytes()
        return cls(data, len(data))

    @classmethod
    def synthetic(cls, size: int) -> Content:
        """A body of ``size`` bytes made of a repeated pattern (not a playable video)."""
        if size < 0:
            raise ValueError("content size must not be negative")
        return cls(b"", size)

    def chunks(self) -> Iterator[bytes]:
        """The body, in order, in chunks of at most 1 MiB."""
        if self.data:
            yield from (self.data[i : i + _CHUNK] for i in range(0, self.size, _CHUNK))
            return
        block = synthetic_block()
        full, rest = divmod(self.size, _CHUNK)
        for _ in range(full):
            yield block
        if rest:
            yield block[:rest]


def synthetic_block() -> bytes:
    """The 1 MiB block a synthetic body repeats; tests rebuild the expected body from it."""
    return bytes(range(256)) * (_CHUNK // 256)


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Everything that shapes the simulator's answers. Built by ``create_simulator_app``."""

    queue_seconds: float = 1.0
    render_seconds: float = 5.0
    progress_curve: ProgressCurve = _CURVES["linear"]
    fail_prompts: tuple[re.Pattern[str], ...] = ()
    api_key: str | None = field(default=None, repr=False)
    models: frozenset[str] | None = DEFAULT_MODELS
    sizes: frozenset[str] = DEFAULT_SIZES
    seconds: frozenset[str] = DEFAULT_SECONDS
    poll_after_ms: int | None = 1000
    asset_ttl_seconds: float = 3600.0
    relay_path: str = "/relay/v1/videos"
    files_host: str | None = None
    max_body_bytes: int = 32 * 1024 * 1024
    content: Content = field(default_factory=Content.sample)
    unique_content: bool = False
    echo_key_in_failures: bool = False
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        for name in ("queue_seconds", "render_seconds", "asset_ttl_seconds"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not self.relay_path.startswith("/") or self.relay_path.endswith("/"):
            raise ValueError(
                f"relay_path must start with '/' and not end with one: {self.relay_path!r}"
            )
