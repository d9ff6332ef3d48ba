"""Input checks: each kind of bad input gets its own error naming the problem and the limit."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from sora_tasks import (
    GenerationRequest,
    ImageDimensionsError,
    ImageError,
    ImageTooLargeError,
    InvalidImageEncodingError,
    InvalidRequestError,
    Limits,
    MediaType,
    PromptError,
    UnsupportedImageTypeError,
    UnsupportedParameterError,
)
from sora_tasks._models import ImageData
from sora_tasks._validation import (
    PreparedRequest,
    decode_image,
    describe,
    parse_size,
    prepare,
    sniff_image_type,
)
from sora_tasks.providers import ProviderCapabilities
from sora_tasks.testing import FakeProvider
from tests.images import make_image

CAPS = ProviderCapabilities(
    models=frozenset({"sora-2"}),
    sizes=frozenset({"1280x720", "64x48"}),
    seconds=frozenset({4, 8}),
    default_model="sora-2",
    default_size="1280x720",
    default_seconds=4,
    image_url=True,
)
LIMITS = Limits()
MiB = 1024 * 1024


def check(**fields: object) -> PreparedRequest:
    return prepare(
        GenerationRequest.model_validate({"prompt": "a cat", **fields}),
        limits=LIMITS,
        provider=FakeProvider(capabilities=CAPS),
        name="p",
    )


def test_defaults_come_from_the_provider() -> None:
    prepared = check(prompt="  a cat  ")
    assert (prepared.prompt, prepared.model, prepared.frame.size, prepared.seconds) == (
        "a cat",
        "sora-2",
        "1280x720",
        4,
    )


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"prompt": ""}, PromptError, "prompt is required"),
        ({"prompt": " \n\t "}, PromptError, "prompt is required"),
        ({"prompt": "x" * 10_001}, PromptError, "10,001 characters; the limit is 10,000"),
        ({"prompt": "a\x00b"}, PromptError, "NUL"),
        ({"model": "sora-9"}, UnsupportedParameterError, "model 'sora-9' is not offered"),
        ({"size": "640x480"}, UnsupportedParameterError, "size '640x480' is not offered"),
        ({"size": "big"}, InvalidRequestError, "WIDTHxHEIGHT"),
        ({"size": "0x720"}, InvalidRequestError, "WIDTHxHEIGHT"),
        ({"seconds": 5}, UnsupportedParameterError, "seconds 5 is not offered"),
        ({"media_type": MediaType.IMAGE}, UnsupportedParameterError, "does not generate IMAGE"),
        ({"user_id": "u" * 256}, InvalidRequestError, "user_id must be 1 to 255"),
        ({"metadata": {"blob": "x" * 20_000}}, InvalidRequestError, "the limit is 16,384"),
        ({"metadata": {"k": "a\x00"}}, InvalidRequestError, "NUL"),
    ],
)
def test_bad_requests(fields: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        check(**fields)


def test_prompt_exactly_at_the_limit_passes() -> None:
    assert check(prompt="x" * 10_000).prompt == "x" * 10_000


def test_prompt_limit_is_configurable() -> None:
    request = GenerationRequest(prompt="x" * 11)
    with pytest.raises(PromptError, match="the limit is 10") as caught:
        prepare(
            request,
            limits=Limits(max_prompt_chars=10),
            provider=FakeProvider(capabilities=CAPS),
            name="p",
        )
    assert caught.value.limit == 10


def test_override_allows_undeclared_values() -> None:
    prepared = check(model="sora-9", size="640x480", seconds=5, allow_unsupported=True)
    assert (prepared.model, prepared.frame.size, prepared.seconds) == ("sora-9", "640x480", 5)


PNG = make_image(64, 48, "PNG")


@pytest.mark.parametrize(
    ("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_every_accepted_form_of_image(tmp_path: Path, fmt: str, mime: str) -> None:
    data = make_image(64, 48, fmt)
    path = tmp_path / "ref.bin"  # the name says nothing: the type comes from the bytes
    path.write_bytes(data)
    encoded = base64.b64encode(data).decode()
    for source in (data, path, str(path), f"data:image/whatever;base64,{encoded}", encoded):
        prepared = check(size="64x48", reference_image=source)
        image = prepared.image
        assert isinstance(image, ImageData)
        assert (image.mime_type, image.width, image.height, image.data) == (mime, 64, 48, data)
        info = describe(prepared.image)
        assert info is not None
        assert info.byte_size == len(data) and info.sha256 == image.sha256


def test_url_is_passed_through_when_the_provider_accepts_urls() -> None:
    prepared = check(reference_image="https://example.com/cat.png")
    assert prepared.image == "https://example.com/cat.png"
    no_urls = CAPS.model_copy(update={"image_url": False})
    with pytest.raises(UnsupportedParameterError, match="does not accept image URLs"):
        prepare(
            GenerationRequest(prompt="a", reference_image="https://example.com/c.png"),
            limits=LIMITS,
            provider=FakeProvider(capabilities=no_urls),
            name="p",
        )


@pytest.mark.parametrize(
    ("source", "error", "message"),
    [
        ("data:image/png;base64,@@@not-base64@@@", InvalidImageEncodingError, "not valid base64"),
        ("data:image/png,rawtext", InvalidImageEncodingError, "data:image/png;base64"),
        ("aGVsbG8gd29ybGQ=", UnsupportedImageTypeError, "not an image"),
        ("!!!!", InvalidImageEncodingError, "not valid base64"),
        (b"just some bytes", UnsupportedImageTypeError, "not an image"),
        (b"GIF89a" + b"\x00" * 20, UnsupportedImageTypeError, "image/gif; only PNG, JPEG and WebP"),
        (b"BM" + b"\x00" * 40, UnsupportedImageTypeError, "image/bmp"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 4, UnsupportedImageTypeError, "header is damaged"),
        ("missing-file.png", ImageError, "cannot read reference image file"),
        (PNG[:0], UnsupportedImageTypeError, "not an image"),
    ],
)
def test_bad_images(source: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        check(size="64x48", reference_image=source)


def test_image_with_other_dimensions_is_rejected() -> None:
    with pytest.raises(
        ImageDimensionsError, match="64x48 pixels; it must match the requested size 1280x720"
    ):
        check(reference_image=PNG)


def test_oversized_image_is_rejected_before_decoding(tmp_path: Path) -> None:
    big = PNG + b"\x00" * (5 * MiB)
    with pytest.raises(ImageTooLargeError, match="the limit is 5,242,880 bytes") as caught:
        check(size="64x48", reference_image=big)
    assert caught.value.limit == 5 * MiB
    with pytest.raises(ImageTooLargeError):
        check(size="64x48", reference_image=base64.b64encode(big).decode())
    path = tmp_path / "big.png"
    path.write_bytes(big)
    with pytest.raises(ImageTooLargeError):
        check(size="64x48", reference_image=path)


def test_image_exactly_at_the_limit_passes() -> None:
    limit = len(PNG)
    image = decode_image(PNG, max_bytes=limit)
    assert not isinstance(image, str) and image.width == 64
    with pytest.raises(ImageTooLargeError):
        decode_image(PNG, max_bytes=limit - 1)


def test_provider_image_limit_tightens_ours() -> None:
    caps = CAPS.model_copy(update={"max_image_bytes": 10})
    with pytest.raises(ImageTooLargeError, match="the limit is 10 bytes"):
        prepare(
            GenerationRequest(prompt="a", size="64x48", reference_image=PNG),
            limits=LIMITS,
            provider=FakeProvider(capabilities=caps),
            name="p",
        )


@pytest.mark.parametrize(("size", "parsed"), [("1280x720", (1280, 720)), ("64x48", (64, 48))])
def test_parse_size(size: str, parsed: tuple[int, int]) -> None:
    assert parse_size(size) == parsed


@pytest.mark.parametrize("data", [b"", b"\x89PN", b"RIFF\x00\x00\x00\x00WEBX"])
def test_sniff_rejects_near_misses(data: bytes) -> None:
    assert sniff_image_type(data) is None
