"""Everything OpenAIVideosProvider sends and parses, checked against OpenAI's OpenAPI contract.

The contract is ``openai-videos-openapi.yaml`` beside this file (a verbatim copy of
``shared/contracts/``). Where the contract and what servers really do disagree, the test that
shows it says so; the adapter follows reality and the contract stays the floor.

One adjustment to the validator, not to the contract: openapi-core hands binary media (a
multipart part whose schema is an ``anyOf``/``oneOf`` such as ``model`` or ``input_reference``,
and the ``video/mp4``/``image/webp`` content) to the schema as raw bytes, which no ``type: string``
accepts. OpenAPI 3.1 validates binary data as a string, so those bodies are handed over as text.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.exceptions import OpenAPIError
from werkzeug.datastructures import Headers, ImmutableMultiDict

from sora_tasks._exceptions import ProviderError
from sora_tasks._models import ImageData, TaskStatus
from sora_tasks.providers import Backoff, OpenAIVideosProvider
from sora_tasks.providers.openai import DEFAULT_OPENAI_CAPABILITIES
from tests.factories import submit_request, video_object
from tests.forms import parse_form
from tests.images import make_image

pytestmark = pytest.mark.anyio

HERE = Path(__file__).resolve().parent
SPEC = HERE / "openai-videos-openapi.yaml"
SHARED_SPEC = HERE.parents[2] / "shared" / "contracts" / "openai-videos-openapi.yaml"
BASE = "https://api.openai.com/v1"
KEY = "sk-contract-test"


def video(**overrides: object) -> dict[str, object]:
    """A Video object created just now (listings are searched by recency)."""
    return video_object(**{"created_at": int(datetime.now(UTC).timestamp()), **overrides})


def _binary_as_text(value: bytes, **parameters: str) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


@cache
def openapi() -> OpenAPI:
    binary = ("application/octet-stream", "video/mp4", "image/webp")
    config = Config(extra_media_type_deserializers=dict.fromkeys(binary, _binary_as_text))
    return OpenAPI.from_file_path(str(SPEC), config=config)


@dataclass
class _Request:
    host_url: str
    path: str
    method: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters = field(default_factory=RequestParameters)


@dataclass
class _Response:
    status_code: int
    content_type: str
    headers: Headers
    data: bytes


def as_openapi_request(request: httpx.Request) -> _Request:
    url = request.url
    return _Request(
        host_url=f"{url.scheme}://{url.host}",
        path=url.path,
        method=request.method.lower(),
        body=request.content or None,
        content_type=request.headers.get("content-type", ""),
        parameters=RequestParameters(
            query=ImmutableMultiDict(list(url.params.multi_items())),
            header=Headers(list(request.headers.items())),
        ),
    )


def as_openapi_response(response: httpx.Response) -> _Response:
    return _Response(
        status_code=response.status_code,
        content_type=response.headers.get("content-type", ""),
        headers=Headers(list(response.headers.items())),
        data=response.content,
    )


def check_calls(route: respx.Route) -> None:
    """Every request sent on ``route``, and its answer, must satisfy the contract."""
    assert route.calls, "nothing was sent"
    for call in route.calls:
        request = as_openapi_request(call.request)
        openapi().validate_request(request)
        openapi().validate_response(request, as_openapi_response(call.response))


@pytest.fixture
async def provider() -> AsyncIterator[OpenAIVideosProvider]:
    adapter = OpenAIVideosProvider(KEY, base_url=BASE, backoff=Backoff(initial=0, maximum=0))
    try:
        yield adapter
    finally:
        await adapter.aclose()


def test_the_copy_matches_the_shared_contract() -> None:
    if not SHARED_SPEC.is_file():
        pytest.skip(f"no shared contract at {SHARED_SPEC} in this checkout to compare with")
    ours = SPEC.read_text().split("openapi: 3.1.0", 1)[1]
    assert ours == SHARED_SPEC.read_text().split("openapi: 3.1.0", 1)[1]


def test_the_validator_is_not_vacuous() -> None:
    """The contract rejects what OpenAI rejects: ``seconds`` as a number, a 101-item page."""
    bad_create = httpx.Request(
        "POST",
        f"{BASE}/videos",
        json={"prompt": "x", "seconds": 4},
        headers={"Authorization": "Bearer k"},
    )
    with pytest.raises(OpenAPIError):
        openapi().validate_request(as_openapi_request(bad_create))
    bad_list = httpx.Request(
        "GET", f"{BASE}/videos?limit=101", headers={"Authorization": "Bearer k"}
    )
    with pytest.raises(OpenAPIError):
        openapi().validate_request(as_openapi_request(bad_list))
    unauthenticated = httpx.Request("GET", f"{BASE}/videos/video_1")
    with pytest.raises(OpenAPIError):
        openapi().validate_request(as_openapi_request(unauthenticated))


# --- requests ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", sorted(DEFAULT_OPENAI_CAPABILITIES.sizes or ()))
@pytest.mark.parametrize("seconds", sorted(DEFAULT_OPENAI_CAPABILITIES.seconds or ()))
@pytest.mark.parametrize("model", sorted(DEFAULT_OPENAI_CAPABILITIES.models or ()))
async def test_json_create_for_every_declared_combination(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider, size: str, seconds: int, model: str
) -> None:
    route = httpx2_mock.post(f"{BASE}/videos").respond(
        200, json=video(model=model, size=size, seconds=str(seconds))
    )
    await provider.submit(submit_request(size=size, seconds=seconds, model=model))
    check_calls(route)


@pytest.mark.parametrize(
    "image_url",
    ["https://images.example/cat.png", "https://images.example/a%20cat.png?sig=1&x=2"],
)
async def test_json_create_with_an_image_url(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider, image_url: str
) -> None:
    route = httpx2_mock.post(f"{BASE}/videos").respond(200, json=video())
    await provider.submit(submit_request(image_url=image_url))
    check_calls(route)
    assert json.loads(route.calls.last.request.content)["input_reference"] == {
        "image_url": image_url
    }


@pytest.mark.parametrize(
    ("mime", "fmt"), [("image/png", "PNG"), ("image/jpeg", "JPEG"), ("image/webp", "WEBP")]
)
async def test_multipart_create_with_an_image(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider, mime: str, fmt: str
) -> None:
    data = make_image(720, 1280, fmt)
    route = httpx2_mock.post(f"{BASE}/videos").respond(200, json=video())
    await provider.submit(submit_request(image=ImageData(data, mime, 720, 1280, "")))
    check_calls(route)
    sent = route.calls.last.request
    part = parse_form(sent.headers["content-type"], sent.content)["input_reference"]
    # the contract only says "binary"; PROVIDERS.md adds what the server really checks
    assert part.content_type == mime
    assert part.filename is not None and part.filename.startswith("reference.")
    assert part.value == data


async def test_status_request(httpx2_mock: respx.Router, provider: OpenAIVideosProvider) -> None:
    route = httpx2_mock.get(f"{BASE}/videos/video_123").respond(200, json=video())
    await provider.status("video_123")
    check_calls(route)


@pytest.mark.parametrize("variant", ["video", "thumbnail", "spritesheet"])
async def test_content_request(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider, variant: Any
) -> None:
    # the contract lists video/mp4 and image/webp; PROVIDERS.md says spritesheets are JPEG, which
    # the contract does not list, so that answer is validated as the webp it documents
    kind = "video/mp4" if variant == "video" else "image/webp"
    route = httpx2_mock.get(f"{BASE}/videos/video_123/content").respond(
        200, content=b"bytes", headers={"content-type": kind}
    )
    async with provider.open_content("video_123", variant) as stream:
        assert b"".join([chunk async for chunk in stream.aiter_bytes()]) == b"bytes"
        assert stream.content_type == kind
    check_calls(route)


async def test_delete_request(httpx2_mock: respx.Router, provider: OpenAIVideosProvider) -> None:
    route = httpx2_mock.delete(f"{BASE}/videos/video_123").respond(
        200, json={"id": "video_123", "object": "video.deleted", "deleted": True}
    )
    await provider.delete("video_123")
    check_calls(route)


async def test_list_requests_while_finding(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    first = {
        "object": "list",
        "data": [video(id="video_a", prompt="another prompt")],
        "first_id": "video_a",
        "last_id": "video_a",
        "has_more": True,
    }
    second = {
        "object": "list",
        "data": [video(id="video_b")],
        "first_id": "video_b",
        "last_id": "video_b",
        "has_more": False,
    }
    route = httpx2_mock.get(f"{BASE}/videos").mock(
        side_effect=[httpx.Response(200, json=first), httpx.Response(200, json=second)]
    )
    job = await provider.find(submit_request())
    assert job is not None and job.external_id == "video_b"
    check_calls(route)
    assert route.call_count == 2


# --- responses ---------------------------------------------------------------------------

UNUSUAL = [
    pytest.param(video(), TaskStatus.QUEUED, 0, id="plain"),
    pytest.param(
        video(status="in_progress", progress=250),
        TaskStatus.PROCESSING,
        100,
        id="progress-over-100",
    ),
    pytest.param(
        video(status="in_progress", progress=-7), TaskStatus.PROCESSING, 0, id="progress-negative"
    ),
    pytest.param(
        video(model="my-own-model-v9", prompt=None, created_at=0),
        TaskStatus.QUEUED,
        0,
        id="odd-model-no-prompt",
    ),
    pytest.param(
        video(
            status="completed",
            progress=100,
            completed_at=4_102_444_800,
            expires_at=4_102_448_400,
            seconds="12",
            size="1792x1024",
            remixed_from_video_id="video_000",
            quality="high",
            usage={"seconds": 12},
        ),
        TaskStatus.COMPLETED,
        100,
        id="completed-far-future-extra-fields",
    ),
    pytest.param(
        video(status="failed", progress=3, error={"code": "", "message": ""}),
        TaskStatus.FAILED,
        3,
        id="failed-empty-error",
    ),
    pytest.param(
        video(status="queued", error={"code": "warning", "message": "slow queue"}),
        TaskStatus.QUEUED,
        0,
        id="queued-with-error-object",
    ),
    pytest.param(video(id="", status="queued"), None, None, id="empty-id"),
]


@pytest.mark.parametrize(("body", "status", "progress"), UNUSUAL)
async def test_every_schema_valid_video_is_parsed(
    httpx2_mock: respx.Router,
    provider: OpenAIVideosProvider,
    body: Mapping[str, object],
    status: TaskStatus | None,
    progress: int | None,
) -> None:
    asked = str(body["id"]) or "v"  # a status answer must be about the job asked for
    route = httpx2_mock.get(f"{BASE}/videos/{asked}").respond(200, json=dict(body))
    if body["id"] == "":
        # the schema allows an empty id; nothing can be tracked under it, so it is refused
        with pytest.raises(ProviderError, match="no id"):
            await provider.status(asked)
    else:
        job = await provider.status(asked)
        assert (job.status, job.progress) == (status, progress)
    check_calls(route)


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("cancelled", TaskStatus.CANCELLED),
        ("canceled", TaskStatus.CANCELLED),
        ("expired", TaskStatus.FAILED),
    ],
)
async def test_statuses_seen_in_practice_but_not_in_the_contract(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider, word: str, status: TaskStatus
) -> None:
    """Disagreement: VideoStatus lists four words; servers also answer these three."""
    route = httpx2_mock.get(f"{BASE}/videos/v").respond(200, json=video(id="v", status=word))
    job = await provider.status("v")
    assert job.status is status
    call = route.calls.last
    with pytest.raises(OpenAPIError):
        openapi().validate_response(
            as_openapi_request(call.request), as_openapi_response(call.response)
        )


async def test_minimal_video_from_a_compatible_server(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    """Disagreement: the contract requires every field (nullable ones too); compatible servers
    often omit the nulls, so the adapter must not depend on them."""
    route = httpx2_mock.get(f"{BASE}/videos/v").respond(
        200, json={"id": "v", "status": "in_progress"}
    )
    job = await provider.status("v")
    assert (job.external_id, job.status, job.progress) == ("v", TaskStatus.PROCESSING, None)
    call = route.calls.last
    with pytest.raises(OpenAPIError):
        openapi().validate_response(
            as_openapi_request(call.request), as_openapi_response(call.response)
        )


async def test_sixteen_seconds_is_beyond_the_contract(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    """Disagreement: newer docs allow ``"16"``/``"20"`` for pro models; the contract does not.

    The adapter sends what it is asked (capabilities gate it), and the contract flags it.
    """
    route = httpx2_mock.post(f"{BASE}/videos").respond(200, json=video(seconds="12"))
    await provider.submit(submit_request(seconds=16, model="sora-2-pro"))
    assert json.loads(route.calls.last.request.content)["seconds"] == "16"
    with pytest.raises(OpenAPIError):
        openapi().validate_request(as_openapi_request(route.calls.last.request))
