"""Richer requests: frame forms, per-model capabilities, each new field checked before storing."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from sora_tasks import (
    GenerationRequest,
    ImageError,
    InvalidRequestError,
    Limits,
    TaskManager,
    TaskStatus,
    UnsupportedParameterError,
)
from sora_tasks._frame import complete_frame, size_of
from sora_tasks._models import ImageData
from sora_tasks._validation import prepare
from sora_tasks.providers import ProviderCapabilities
from sora_tasks.storage import InMemoryStore
from sora_tasks.testing import FakeBehaviour, FakeProvider
from tests.images import make_image

pytestmark = pytest.mark.anyio

VEO = ProviderCapabilities(
    seconds=frozenset({4, 6, 8}),
    aspect_ratios=frozenset({"16:9", "9:16"}),
    resolutions=frozenset({"720p", "1080p"}),
    default_model="veo",
    default_size="1280x720",
    default_seconds=8,
    image_url=True,
    image_matches_size=False,
    last_frame=True,
    max_reference_images=3,
    negative_prompt=True,
    audio=frozenset({True, False}),
)
KLING = ProviderCapabilities(
    seconds=frozenset({5, 10}),
    aspect_ratios=frozenset({"16:9", "9:16", "1:1"}),
    default_model="kling",
    default_size="1920x1080",
    default_seconds=5,
    image_matches_size=False,
    seed=True,
    provider_options=False,
)


class ManyModels(FakeProvider):
    """A fake that reaches two models, each with its own capabilities, like fal or Replicate."""

    @property
    def capabilities(self) -> ProviderCapabilities:
        return VEO.model_copy(update={"models": frozenset({"veo", "kling"})})

    def capabilities_for(self, model: str) -> ProviderCapabilities | None:
        return {"veo": VEO, "kling": KLING}.get(model)


PNG = make_image(64, 48, "PNG")
JPEG = make_image(32, 32, "JPEG")


def check(**fields: Any) -> Any:
    return prepare(
        GenerationRequest.model_validate({"prompt": "a cat", **fields}),
        limits=Limits(),
        provider=ManyModels(),
        name="many",
    )


@pytest.mark.parametrize(
    ("size", "ratio", "resolution", "expected"),
    [
        ("1280x720", None, None, ("1280x720", "16:9", "720p")),
        ("720x1280", "9:16", "720p", ("720x1280", "9:16", "720p")),
        ("854x480", None, None, ("854x480", "16:9", "480p")),
        ("1024x1792", None, None, ("1024x1792", "4:7", "1024p")),
        ("3840x2160", None, None, ("3840x2160", "16:9", "4k")),
        ("1000x700", None, None, ("1000x700", "10:7", "700p")),
        (None, "9:16", None, ("720x1280", "9:16", "720p")),
        (None, None, "1080p", ("1920x1080", "16:9", "1080p")),
        (None, "1:1", "1080P", ("1080x1080", "1:1", "1080p")),
        (None, "21:9", "4K", ("5040x2160", "21:9", "4k")),
    ],
)
def test_a_frame_is_completed_from_whatever_was_given(
    size: str | None, ratio: str | None, resolution: str | None, expected: tuple[str, str, str]
) -> None:
    frame = complete_frame(
        size=size, aspect_ratio=ratio, resolution=resolution, default_size="1280x720"
    )
    assert (frame.size, frame.aspect_ratio, frame.resolution) == expected


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"aspect_ratio": "wide"}, "aspect_ratio must look like W:H"),
        ({"aspect_ratio": "0:9"}, "aspect_ratio must look like W:H"),
        ({"resolution": "HD"}, "resolution must look like 480p"),
        ({"resolution": "3k"}, "resolution must look like 480p"),
        ({"size": "1280x720", "aspect_ratio": "9:16"}, "aspect_ratio '9:16' conflicts with size"),
        ({"size": "1280x720", "resolution": "1080p"}, "resolution '1080p' conflicts with size"),
    ],
)
def test_malformed_or_conflicting_frames_are_refused(fields: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        complete_frame(
            size=fields.get("size"),
            aspect_ratio=fields.get("aspect_ratio"),
            resolution=fields.get("resolution"),
            default_size="1280x720",
        )


def test_size_of_rounds_the_long_side_to_even_pixels() -> None:
    assert size_of("16:9", "480p") == "854x480"
    assert size_of("9:16", "1080p") == "1080x1920"


def test_each_model_is_checked_against_its_own_capabilities() -> None:
    prepared = check(model="kling", aspect_ratio="1:1", seconds=10, seed=7)
    assert (prepared.frame.size, prepared.seconds, prepared.seed) == ("1080x1080", 10, 7)
    veo = check(aspect_ratio="9:16", resolution="1080p", negative_prompt=" blur ", audio=False)
    assert (veo.model, veo.frame.size, veo.seconds) == ("veo", "1080x1920", 8)
    assert (veo.negative_prompt, veo.audio) == ("blur", False)


@pytest.mark.parametrize(
    ("fields", "field", "message", "limit"),
    [
        (
            {"aspect_ratio": "1:1"},
            "aspect_ratio",
            "aspect_ratio '1:1' is not offered by model 'veo' of provider 'many' "
            "(offered: 9:16, 16:9)",
            ["9:16", "16:9"],
        ),
        (
            {"resolution": "4k"},
            "resolution",
            "(offered: 720p, 1080p)",
            ["720p", "1080p"],
        ),
        ({"size": "640x480"}, "aspect_ratio", "aspect_ratio '4:3' is not offered", None),
        ({"seconds": 5}, "seconds", "seconds 5 is not offered by model 'veo'", [4, 6, 8]),
        ({"model": "kling", "seconds": 8}, "seconds", "(offered: 5, 10)", [5, 10]),
        ({"model": "kling", "negative_prompt": "x"}, "negative_prompt", "does not take", None),
        ({"seed": 1}, "seed", "model 'veo' of provider 'many' does not take seed", None),
        ({"model": "kling", "audio": True}, "audio", "has no audio switch", None),
        ({"model": "kling", "last_frame": PNG}, "last_frame", "does not take last_frame", None),
        (
            {"model": "kling", "reference_images": [PNG]},
            "reference_images",
            "does not take reference_images",
            0,
        ),
        (
            {"reference_images": [PNG, PNG, JPEG, JPEG]},
            "reference_images",
            "4 reference_images given; model 'veo' of provider 'many' takes at most 3",
            3,
        ),
        (
            {"model": "kling", "provider_options": {"cfg": 0.5}},
            "provider_options",
            "does not take provider_options",
            None,
        ),
        (
            {"model": "sora-9"},
            "model",
            "model 'sora-9' is not offered by provider 'many' (offered: kling, veo); pass the "
            "model's own input as provider_options",
            ["kling", "veo"],
        ),
        (
            {"provider_options": {"blob": "x" * 70_000}},
            "provider_options",
            "the limit is 65,536",
            65_536,
        ),
        ({"provider_options": {"k": "a\x00"}}, "provider_options", "NUL", None),
        ({"negative_prompt": "x" * 10_001}, "negative_prompt", "the limit is 10,000", 10_000),
    ],
)
def test_what_a_model_cannot_take_is_refused_by_name(
    fields: dict[str, Any], field: str, message: str, limit: object
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        check(**fields)
    assert message in str(caught.value)
    assert caught.value.field == field
    if limit is not None:
        assert caught.value.limit == limit


def test_an_unknown_model_goes_through_with_its_own_input_and_nothing_else() -> None:
    prepared = check(model="acme/video-9", provider_options={"steps": 30}, reference_image=PNG)
    assert prepared.model == "acme/video-9"
    assert prepared.provider_options == {"steps": 30}
    assert isinstance(prepared.image, ImageData)
    with pytest.raises(UnsupportedParameterError, match="put the field in provider_options"):
        check(model="acme/video-9", provider_options={"steps": 30}, negative_prompt="blur")


def test_each_image_is_named_in_its_error() -> None:
    with pytest.raises(ImageError, match="reference image 2 is not an image") as caught:
        check(reference_images=[PNG, b"not an image"])
    assert caught.value.field == "reference_images[1]"
    with pytest.raises(ImageError, match="last frame is not an image") as caught:
        check(last_frame=b"nope")
    assert caught.value.field == "last_frame"


def test_url_images_are_refused_where_the_model_takes_only_bytes() -> None:
    with pytest.raises(UnsupportedParameterError, match="does not accept image URLs") as caught:
        check(model="kling", reference_image="https://example.com/a.png")
    assert caught.value.field == "reference_image"


def test_distinct_images_are_kept_once() -> None:
    prepared = check(reference_image=PNG, last_frame=PNG, reference_images=[JPEG, PNG])
    assert sorted(image.sha256 for image in prepared.images) == sorted(
        hashlib.sha256(data).hexdigest() for data in (PNG, JPEG)
    )


async def test_every_field_is_stored_and_reaches_the_provider() -> None:
    fake = ManyModels(behaviour=FakeBehaviour(render_for=60))
    store = InMemoryStore()
    async with TaskManager(providers={"many": fake}, store=store) as manager:
        task = await manager.create(
            "a paper boat",
            aspect_ratio="9:16",
            resolution="1080p",
            seconds=6,
            negative_prompt="blur",
            audio=True,
            reference_image=PNG,
            last_frame="https://example.com/last.png",
            reference_images=[JPEG, PNG],
            provider_options={"enhance_prompt": True},
        )
        stored = await store.get(task.id)
        assert (stored.size, stored.aspect_ratio, stored.resolution) == (
            "1080x1920",
            "9:16",
            "1080p",
        )
        assert (stored.negative_prompt, stored.audio, stored.seed) == ("blur", True, None)
        assert stored.last_frame is not None and stored.last_frame.url == (
            "https://example.com/last.png"
        )
        assert [image.byte_size for image in stored.reference_images] == [len(JPEG), len(PNG)]
        assert stored.provider_options == {"enhance_prompt": True}

        (sent,) = fake.submissions
        assert (sent.size, sent.aspect_ratio, sent.resolution, sent.seconds) == (
            "1080x1920",
            "9:16",
            "1080p",
            6,
        )
        assert sent.image is not None and sent.image.data == PNG
        assert sent.last_frame == "https://example.com/last.png"
        assert [image.data for image in sent.reference_images if isinstance(image, ImageData)] == [
            JPEG,
            PNG,
        ]
        assert sent.provider_options == {"enhance_prompt": True}
        assert sent.deadline_at == stored.deadline_at
        assert task.external_id is not None and task.status is TaskStatus.PROCESSING


async def test_a_refused_request_stores_and_sends_nothing() -> None:
    fake = ManyModels()
    store = InMemoryStore()
    async with TaskManager(providers={"many": fake}, store=store) as manager:
        with pytest.raises(UnsupportedParameterError):
            await manager.create("a cat", reference_images=[PNG] * 4)
        with pytest.raises(InvalidRequestError):
            await manager.create("a cat", model="kling", aspect_ratio="4:3")
        assert (await manager.stats()).total == 0
    assert fake.submissions == []
