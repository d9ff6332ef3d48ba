"""The same Veo calls through Google's official ``google-genai`` package and through our adapter,
compared request by request: method, path, the credential header and the JSON body.

Both talk to a recording ASGI app served on 127.0.0.1 (the SDK's ``http_options.base_url`` points
there). ``google-genai`` is a test dependency only; the library never imports it. On Vertex AI
both authenticate with the same google-auth credentials object. The one difference on purpose:
reference images are typed ``asset``, as Google's REST reference writes it, where the SDK sends
its enum's name ``ASSET``. ``google-genai`` 3.x no longer sends Veo jobs to the Gemini API, so
the test pins the 2.x line.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from google import genai
from google.genai import types
from google.oauth2.credentials import Credentials

from sora_tasks.providers import SubmitRequest, VeoProvider
from sora_tasks.testing import serve_in_thread
from sora_tasks.testing._conformance_support import make_image
from tests.recording import Recorded, Recorder

pytestmark = pytest.mark.anyio

KEY = "AIza-equivalence-test"
TOKEN = "ya29.equivalence-test-token"
PROMPT = "a calico cat playing piano"
MODEL = "veo-3.1-generate-preview"
VERTEX_MODEL = "veo-3.1-generate-001"
PREFIX = "projects/eq-project/locations/us-central1/publishers/google/models/"
MATTERS = ("x-goog-api-key", "authorization", "content-type")


def operation(request: Recorded) -> tuple[int, object]:
    """A new operation for a create, the same operation done (with its video) for a read."""
    vertex = "/projects/" in request.path
    model = VERTEX_MODEL if vertex else MODEL
    name = f"{PREFIX if vertex else 'models/'}{model}/operations/eqop"
    answer: dict[str, Any] = {"name": name}
    if not request.path.endswith(":predictLongRunning"):
        video = {"gcsUri": "gs://eq-bucket/eq/sample_0.mp4", "mimeType": "video/mp4"}
        uri = "https://generativelanguage.googleapis.com/v1beta/files/eqfile:download?alt=media"
        answer["done"] = True
        answer["response"] = (
            {"videos": [video]}
            if vertex
            else {"generateVideoResponse": {"generatedSamples": [{"video": {"uri": uri}}]}}
        )
    return 200, answer


@asynccontextmanager
async def gemini() -> AsyncIterator[tuple[genai.Client, VeoProvider, Recorder]]:
    recorder = Recorder(operation)
    with serve_in_thread(recorder) as url:
        options = types.HttpOptions(base_url=url, api_version="v1beta")
        sdk = genai.Client(api_key=KEY, http_options=options)
        adapter = VeoProvider(KEY, base_url=f"{url}/v1beta", max_retries=0)
        try:
            yield sdk, adapter, recorder
        finally:
            await adapter.aclose()
            await sdk.aio.aclose()


@asynccontextmanager
async def vertex() -> AsyncIterator[tuple[genai.Client, VeoProvider, Recorder]]:
    recorder = Recorder(operation)
    credentials = Credentials(token=TOKEN)  # type: ignore[no-untyped-call]  # valid as it is
    with serve_in_thread(recorder) as url:
        options = types.HttpOptions(base_url=url, api_version="v1")
        sdk = genai.Client(
            vertexai=True,
            project="eq-project",
            location="us-central1",
            credentials=credentials,
            http_options=options,
        )
        adapter = VeoProvider.vertex(
            "eq-project",
            "us-central1",
            credentials,
            base_url=f"{url}/v1",
            storage_uri="gs://eq-bucket/eq/",
            max_retries=0,
        )
        try:
            yield sdk, adapter, recorder
        finally:
            await adapter.aclose()
            await sdk.aio.aclose()


def request(**overrides: Any) -> SubmitRequest:
    fields: dict[str, Any] = {
        "task_id": "video_eq",
        "idempotency_key": "sub_eq",
        "prompt": PROMPT,
        "model": MODEL,
        "size": "1280x720",
        "seconds": 8,
        "aspect_ratio": "16:9",
        "resolution": "720p",
        **overrides,
    }
    return SubmitRequest(**fields)


def same(ours: Recorded, theirs: Recorded) -> None:
    assert (ours.method, ours.path) == (theirs.method, theirs.path)
    wanted = theirs.matters(MATTERS)
    if not theirs.body:
        wanted.pop("content-type", None)  # the SDK labels even a GET with no body as JSON
    assert ours.matters(MATTERS) == wanted
    assert ours.json() == _documented(theirs.json())


def _documented(body: object) -> object:
    """The SDK's body with ``referenceType`` spelled as the REST reference does (``asset``; the
    SDK sends its enum's name, ``ASSET``): the one difference on purpose."""
    if isinstance(body, dict):
        return {
            key: value.lower()
            if key == "referenceType" and isinstance(value, str)
            else _documented(value)
            for key, value in body.items()
        }
    if isinstance(body, list):
        return [_documented(item) for item in body]
    return body


async def test_a_text_to_video_create_and_its_read_match_the_sdk() -> None:
    async with gemini() as (sdk, adapter, recorder):
        config = types.GenerateVideosConfig(
            number_of_videos=1,
            duration_seconds=8,
            aspect_ratio="16:9",
            resolution="720p",
            negative_prompt="text overlays",
            person_generation="allow_all",
        )
        operation = await sdk.aio.models.generate_videos(
            model=MODEL, source=types.GenerateVideosSource(prompt=PROMPT), config=config
        )
        await sdk.aio.operations.get(operation)
        job = await adapter.submit(
            request(
                negative_prompt="text overlays",
                provider_options={"personGeneration": "allow_all"},
            )
        )
        done = await adapter.status(job.external_id)
    theirs_create, theirs_read, ours_create, ours_read = recorder.requests
    same(ours_create, theirs_create)
    same(ours_read, theirs_read)
    assert ours_create.path == f"/v1beta/models/{MODEL}:predictLongRunning"
    assert ours_create.matters(MATTERS)["x-goog-api-key"] == KEY
    assert job.external_id == operation.name
    assert done.result_url is not None and done.result_url.endswith("eqfile:download?alt=media")


async def test_frames_and_reference_images_match_the_sdk() -> None:
    first, last = make_image("64x64", 10), make_image("64x64", 20)
    references = (make_image("64x64", 30), make_image("64x64", 40))
    async with gemini() as (sdk, adapter, recorder):
        config = types.GenerateVideosConfig(
            number_of_videos=1,
            duration_seconds=8,
            aspect_ratio="9:16",
            resolution="1080p",
            last_frame=types.Image(image_bytes=last.data, mime_type=last.mime_type),
            reference_images=[
                types.VideoGenerationReferenceImage(
                    image=types.Image(image_bytes=image.data, mime_type=image.mime_type),
                    reference_type=types.VideoGenerationReferenceType.ASSET,
                )
                for image in references
            ],
        )
        source = types.GenerateVideosSource(
            prompt=PROMPT, image=types.Image(image_bytes=first.data, mime_type=first.mime_type)
        )
        await sdk.aio.models.generate_videos(model=MODEL, source=source, config=config)
        await adapter.submit(
            request(
                size="1080x1920",
                aspect_ratio="9:16",
                resolution="1080p",
                image=first,
                last_frame=last,
                reference_images=references,
            )
        )
    theirs, ours = recorder.requests
    same(ours, theirs)


async def test_vertex_calls_match_the_sdk() -> None:
    async with vertex() as (sdk, adapter, recorder):
        config = types.GenerateVideosConfig(
            number_of_videos=1,
            duration_seconds=8,
            aspect_ratio="16:9",
            resolution="720p",
            seed=7,
            generate_audio=False,
            output_gcs_uri="gs://eq-bucket/eq/",
        )
        operation = await sdk.aio.models.generate_videos(
            model=VERTEX_MODEL, source=types.GenerateVideosSource(prompt=PROMPT), config=config
        )
        await sdk.aio.operations.get(operation)
        job = await adapter.submit(request(model=VERTEX_MODEL, seed=7, audio=False))
        done = await adapter.status(job.external_id)
    theirs_create, theirs_read, ours_create, ours_read = recorder.requests
    same(ours_create, theirs_create)
    same(ours_read, theirs_read)
    assert ours_create.path == f"/v1/{PREFIX}{VERTEX_MODEL}:predictLongRunning"
    assert ours_read.path == f"/v1/{PREFIX}{VERTEX_MODEL}:fetchPredictOperation"
    assert ours_create.matters(MATTERS)["authorization"] == f"Bearer {TOKEN}"
    assert done.result_url == "gs://eq-bucket/eq/sample_0.mp4"
