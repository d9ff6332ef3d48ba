"""The options that describe one job, shared by `submit` and `generate`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from .._exceptions import InvalidRequestError

__all__ = [
    "AllowUnsupported",
    "AspectRatio",
    "Audio",
    "Image",
    "LastFrame",
    "Model",
    "NegativePrompt",
    "NotifyProgress",
    "NotifyUrl",
    "Options",
    "References",
    "Resolution",
    "Seconds",
    "Seed",
    "Size",
    "request_options",
]

Model = Annotated[str | None, typer.Option(help="Model [default: the provider's].")]
Size = Annotated[str | None, typer.Option(help="WIDTHxHEIGHT, e.g. 1280x720.")]
Seconds = Annotated[int | None, typer.Option(help="Duration in seconds.")]
AspectRatio = Annotated[
    str | None, typer.Option(help="Aspect ratio, e.g. 16:9 (instead of --size).")
]
Resolution = Annotated[
    str | None, typer.Option(help="Resolution, e.g. 720p or 1080p (instead of --size).")
]
Image = Annotated[
    str | None,
    typer.Option("--image", help="First frame: a PNG/JPEG/WebP file, data URL or http(s) URL."),
]
LastFrame = Annotated[
    str | None, typer.Option(help="Last frame: a PNG/JPEG/WebP file, data URL or http(s) URL.")
]
References = Annotated[
    list[str] | None,
    typer.Option("--reference", help="A reference image guiding the look (repeatable)."),
]
NegativePrompt = Annotated[str | None, typer.Option(help="What the video must not show.")]
Seed = Annotated[int | None, typer.Option(help="Seed, for models that take one.", min=0)]
Audio = Annotated[
    bool | None, typer.Option("--audio/--no-audio", help="Generate sound [default: the model's].")
]
Options = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        help="KEY=VALUE sent to the provider as is (VALUE parsed as JSON when it is JSON; "
        "repeatable).",
    ),
]
NotifyUrl = Annotated[
    str | None,
    typer.Option(
        help="POST a signed webhook here when the job ends (needs SORA_TASKS_WEBHOOK_SECRET)."
    ),
]
NotifyProgress = Annotated[
    bool, typer.Option(help="Also POST a webhook each time the job's progress moves.")
]
AllowUnsupported = Annotated[
    bool, typer.Option(help="Send a model, size or duration the provider does not declare.")
]


def request_options(
    *,
    model: str | None,
    size: str | None,
    seconds: int | None,
    aspect_ratio: str | None,
    resolution: str | None,
    image: str | None,
    last_frame: str | None,
    references: list[str] | None,
    negative_prompt: str | None,
    seed: int | None,
    audio: bool | None,
    options: list[str] | None,
    allow_unsupported: bool,
    notify_url: str | None = None,
    notify_progress: bool = False,
) -> dict[str, Any]:
    """The keyword arguments of ``TaskManager.create`` these options stand for."""
    return {
        "model": model,
        "size": size,
        "seconds": seconds,
        "aspect_ratio": aspect_ratio,
        "resolution": resolution,
        "reference_image": image,
        "last_frame": last_frame,
        "reference_images": list(references or ()),
        "negative_prompt": negative_prompt,
        "seed": seed,
        "audio": audio,
        "provider_options": parse_options(options or ()),
        "allow_unsupported": allow_unsupported,
        "notify_url": notify_url,
        "notify_progress": notify_progress if notify_url is not None else None,
    }


def parse_options(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["steps=30", "style=anime"]`` → ``{"steps": 30, "style": "anime"}``."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, equals, text = pair.partition("=")
        if not equals or not key.strip():
            raise InvalidRequestError(
                f"--option {pair!r} is not KEY=VALUE (e.g. --option steps=30)",
                field="provider_options",
            )
        try:
            parsed[key.strip()] = json.loads(text)
        except ValueError:
            parsed[key.strip()] = text  # a bare word is meant as text
    return parsed
