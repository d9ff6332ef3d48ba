"""The Veo shapes (Gemini API and Vertex AI): ``predictLongRunning``, operations that only say
``done``, the safety filter's empty answers, Google's error body; on the Gemini API videos behind
the files endpoint for two days, on Vertex AI ``fetchPredictOperation`` with the video inline
(base64, streamed) or in a ``gs://`` bucket served by a Cloud Storage JSON API stand-in.

Written from the Gemini API video guide (https://ai.google.dev/gemini-api/docs/video) and the
``google-genai`` SDK's mappers (``google/genai/models.py``, ``operations.py``, ``files.py``). It
lives under ``/veo/v1beta`` (point ``VeoProvider(base_url=...)`` there) and takes the key as
``x-goog-api-key`` or ``?key=``. A blocked prompt finishes with no sample and the filter's
reasons; a failure pinned with a code carries it as the ``google.rpc.ErrorInfo`` reason. The
Vertex AI shape lives under ``/vertex/v1`` (``VeoProvider.vertex(base_url=...)``) and Cloud
Storage under ``/storage/v1`` (``storage_url=`` the server's origin); both take the key as a
bearer token, standing in for an OAuth access token.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
from collections.abc import Iterator, Mapping

from ._simulator_asgi import HTTPFault, Reply, Request
from ._simulator_state import SimulatedJob, SimulatorState

__all__ = [
    "STORAGE_PATH",
    "VEO_PATH",
    "VERTEX_PATH",
    "create",
    "error",
    "file",
    "get",
    "operation_object",
    "storage_object",
    "vertex_create",
    "vertex_fetch",
]

VEO_PATH = "/veo/v1beta"
VERTEX_PATH = "/vertex/v1"
STORAGE_PATH = "/storage/v1"

_DURATIONS = frozenset({4, 5, 6, 7, 8})
_FULL_LENGTH = 8
_RESOLUTIONS = frozenset({"720p", "1080p", "4k"})
_RATIOS = frozenset({"16:9", "9:16"})
_GEMINI_ONLY_REFUSED = ("seed", "generateAudio", "storageUri", "fps", "pubsubTopic")
_INSTANCE_FIELDS = frozenset({"prompt", "image", "lastFrame", "referenceImages", "video"})
_FILTER_REASON = (
    "We encountered an issue with the audio for your prompt. You have not been charged. "
    "Please try a different prompt. Support codes: 58061214"
)
_RESPONSE_TYPE = (
    "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
)
_VERTEX_RESPONSE_TYPE = "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse"
_SLOT = "__simulated_inline_video__"
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    415: "INVALID_ARGUMENT",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def error(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> HTTPFault:
    """An error answer as Google APIs send them: ``{"error": {code, message, status}}``."""
    payload = {
        "error": {
            "code": status,
            "message": message,
            "status": _STATUS_NAMES.get(status, "UNKNOWN"),
        }
    }
    return HTTPFault(Reply.json(status, payload, headers))


def operation_object(
    state: SimulatorState, job: SimulatedJob, request: Request
) -> dict[str, object]:
    """The operation as of now: ``done`` left out while it runs, like proto3 JSON does."""
    view = state.view(job)
    pin = view.pin
    name = _name(job)
    if pin is not None and pin.word and pin.word not in ("running", "done", "error", "filtered"):
        return {"name": name, "done": pin.word}
    if view.phase in ("queued", "in_progress", "cancelled"):
        return {"name": name}
    if view.phase == "failed" and pin is not None:
        return {"name": name, "done": True, "error": _rpc_error(pin)}
    samples: dict[str, object]
    if view.phase == "failed" or (pin is not None and pin.empty):  # a blocked prompt, unpinned
        samples = {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": [_FILTER_REASON]}
    else:
        url = f"{request.origin()}{VEO_PATH}/files/{job.id}:download?alt=media"
        samples = {"generatedSamples": [{"video": {"uri": url}}]}
    return {
        "name": name,
        "done": True,
        "response": {
            "@type": _RESPONSE_TYPE,
            "generateVideoResponse": samples,
        },
    }


def create(state: SimulatorState, request: Request, model: str) -> Reply:
    """``POST /models/{model}:predictLongRunning``."""
    job = _new_job(state, request, model, prefix="", vertex=False)
    return Reply.json(200, {"name": _name(job)})


def vertex_create(
    state: SimulatorState, request: Request, project: str, location: str, model: str
) -> Reply:
    """``POST /projects/{p}/locations/{l}/publishers/google/models/{model}:predictLongRunning``."""
    prefix = f"projects/{project}/locations/{location}/publishers/google/"
    job = _new_job(state, request, model, prefix=prefix, vertex=True)
    return Reply.json(200, {"name": _name(job)})


def vertex_fetch(
    state: SimulatorState, request: Request, project: str, location: str, model: str
) -> Reply:
    """``POST ...models/{model}:fetchPredictOperation`` with ``{"operationName": name}``: the
    operation, its video inline (streamed base64) unless it went to a bucket."""
    body = _body(request)
    name = body.get("operationName")
    job_id = name.rsplit("/", 1)[-1] if isinstance(name, str) else ""
    job = state.get(job_id, "veo")
    if job is None or _name(job) != name or not job.fields.get("vertex"):
        raise error(404, f"Operation {name} not found.")
    operation = operation_object(state, job, request)
    response = operation.get("response")
    if not isinstance(response, dict):
        return Reply.json(200, operation)
    samples = response.pop("generateVideoResponse")
    response["@type"] = _VERTEX_RESPONSE_TYPE
    if "generatedSamples" not in samples:
        response.update(samples)
        return Reply.json(200, operation)
    storage = _parameters(job).get("storageUri")
    if isinstance(storage, str):
        uri = f"{storage.rstrip('/')}/{job.id}/sample_0.mp4"
        response["videos"] = [{"gcsUri": uri, "mimeType": "video/mp4"}]
        return Reply.json(200, operation)
    response["videos"] = [{"bytesBase64Encoded": _SLOT, "mimeType": "video/mp4"}]
    head, _, tail = json.dumps(operation, separators=(",", ":")).encode().partition(_SLOT.encode())
    size = _size(state, job)
    chunks = itertools.chain((head,), _base64_chunks(_video(state, job)), (tail,))
    return Reply(
        200,
        [("content-type", "application/json")],
        chunks,
        len(head) + 4 * math.ceil(size / 3) + len(tail),
    )


def storage_object(state: SimulatorState, request: Request, bucket: str, name: str) -> Reply:
    """``GET /storage/v1/b/{bucket}/o/{object}?alt=media``: a video Veo wrote to a bucket."""
    if request.query.get("alt") != "media":
        raise error(400, "only alt=media downloads are served here")
    job_id = name.rsplit("/", 2)[-2] if name.count("/") >= 1 else ""
    job = state.get(job_id, "veo")
    storage = _parameters(job).get("storageUri") if job is not None else None
    expected = f"{str(storage).rstrip('/')}/{job_id}/sample_0.mp4"
    if job is None or not isinstance(storage, str) or expected != f"gs://{bucket}/{name}":
        raise error(404, f"No such object: {bucket}/{name}")
    if state.view(job).phase != "completed":
        raise error(404, f"No such object: {bucket}/{name}")
    return Reply(200, [("content-type", "video/mp4")], _video(state, job), _size(state, job))


def _new_job(
    state: SimulatorState, request: Request, model: str, *, prefix: str, vertex: bool
) -> SimulatedJob:
    body = _body(request)
    instances = body.get("instances")
    if not isinstance(instances, list) or len(instances) != 1 or not isinstance(instances[0], dict):
        raise error(400, "instances must hold exactly one instance")
    instance: Mapping[str, object] = instances[0]
    unknown = sorted(set(instance) - _INSTANCE_FIELDS)
    if unknown:
        raise error(
            400, f'Invalid JSON payload received. Unknown name "{unknown[0]}" at instances[0]'
        )
    prompt = instance.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise error(400, "prompt is required")
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        raise error(400, "parameters must be an object")
    _check_parameters(instance, parameters, vertex=vertex)
    return state.create_job(
        shape="veo",
        prompt=prompt,
        model=model,
        size=str(parameters.get("aspectRatio", "16:9")),
        seconds=str(parameters.get("durationSeconds", _FULL_LENGTH)),
        fields={"body": dict(body), "model": model, "prefix": prefix, "vertex": vertex},
        reference=None,
    )


def _parameters(job: SimulatedJob | None) -> Mapping[str, object]:
    body = job.fields.get("body") if job is not None else None
    parameters = body.get("parameters") if isinstance(body, dict) else None
    return parameters if isinstance(parameters, dict) else {}


def _size(state: SimulatorState, job: SimulatedJob) -> int:
    extra = len(job.id) if state.config.unique_content else 0
    return state.config.content.size + extra


def _video(state: SimulatorState, job: SimulatedJob) -> Iterator[bytes]:
    content = state.config.content
    if state.config.unique_content:
        return itertools.chain(content.chunks(), (job.id.encode(),))
    return content.chunks()


def _base64_chunks(chunks: Iterator[bytes]) -> Iterator[bytes]:
    carry = b""
    for chunk in chunks:
        data = carry + chunk
        cut = len(data) - len(data) % 3
        carry = data[cut:]
        if cut:
            yield base64.b64encode(data[:cut])
    if carry:
        yield base64.b64encode(carry)


def get(state: SimulatorState, request: Request, model: str, task_id: str) -> Reply:
    """``GET /models/{model}/operations/{id}``."""
    job = state.get(task_id, "veo")
    if (
        job is None
        or job.fields.get("vertex")
        or _name(job) != f"models/{model}/operations/{task_id}"
    ):
        raise error(404, f"Operation models/{model}/operations/{task_id} not found.")
    return Reply.json(200, operation_object(state, job, request))


def file(state: SimulatorState, request: Request, task_id: str) -> Reply:
    """``GET /files/{id}:download?alt=media``: the video, for two days after it finished."""
    job = state.get(task_id, "veo")
    if request.query.get("alt") != "media":
        raise error(400, "only alt=media downloads are served here")
    if job is None:
        raise error(404, f"File files/{task_id} not found.")
    view = state.view(job)
    blocked = view.phase == "failed" or (view.pin is not None and view.pin.empty)
    if view.phase != "completed" or blocked or view.expired:
        raise error(404, f"File files/{task_id} not found.")
    return Reply(200, [("content-type", "video/mp4")], _video(state, job), _size(state, job))


def _check_parameters(
    instance: Mapping[str, object], parameters: Mapping[str, object], *, vertex: bool = False
) -> None:
    for name in () if vertex else _GEMINI_ONLY_REFUSED:
        if name in parameters:
            raise error(400, f"{name} isn't supported by this model.")
    storage = parameters.get("storageUri")
    if storage is not None and not (isinstance(storage, str) and storage.startswith("gs://")):
        raise error(400, "storageUri must be a gs:// URI")
    seconds = parameters.get("durationSeconds", _FULL_LENGTH)
    if not isinstance(seconds, int) or seconds not in _DURATIONS:
        raise error(400, f"durationSeconds must be between 4 and 8, got {seconds!r}")
    ratio = parameters.get("aspectRatio", "16:9")
    if ratio not in _RATIOS:
        raise error(400, f"aspectRatio must be one of {sorted(_RATIOS)}, got {ratio!r}")
    resolution = parameters.get("resolution", "720p")
    if resolution not in _RESOLUTIONS:
        raise error(400, f"resolution must be one of {sorted(_RESOLUTIONS)}, got {resolution!r}")
    references = instance.get("referenceImages", [])
    if not isinstance(references, list) or len(references) > 3:
        raise error(400, "at most 3 reference images")
    for image in (instance.get("image"), instance.get("lastFrame"), *references):
        found = image.get("image") if isinstance(image, dict) and "image" in image else image
        _check_image(found, vertex=vertex)
    needs_eight = resolution != "720p" or references or "lastFrame" in instance
    if needs_eight and seconds != _FULL_LENGTH:
        raise error(400, "1080p, 4k, reference images and interpolation need durationSeconds 8")


def _check_image(image: object, *, vertex: bool) -> None:
    if image is None:
        return
    if vertex and isinstance(image, dict) and isinstance(image.get("gcsUri"), str):
        return
    if not isinstance(image, dict) or not isinstance(image.get("bytesBase64Encoded"), str):
        raise error(400, "an image must carry bytesBase64Encoded (gcsUri is Vertex AI only)")
    if not isinstance(image.get("mimeType"), str):
        raise error(400, "an image must carry its mimeType")


def _body(request: Request) -> dict[str, object]:
    if request.content_type != "application/json":
        raise error(415, "Content-Type must be application/json")
    try:
        body = json.loads(request.body)
    except ValueError:
        raise error(400, "Invalid JSON payload received.") from None
    if not isinstance(body, dict):
        raise error(400, "Invalid JSON payload received: not an object.")
    return body


def _rpc_error(pin: object) -> dict[str, object]:
    code = getattr(pin, "error_code", None)
    message = getattr(pin, "error_message", None) or "Video generation failed."
    status: dict[str, object] = {"code": 13, "message": message}
    if code:
        status["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": code,
                "domain": "generativelanguage.googleapis.com",
            }
        ]
    return status


def _name(job: SimulatedJob) -> str:
    return f"{job.fields.get('prefix', '')}models/{job.fields['model']}/operations/{job.id}"
