"""The conformance kit's harness for :class:`~sora_tasks.providers.FalProvider`: the adapter
wired to the simulator's fal shape, served on a real socket."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from pydantic import JsonValue

from ..providers._base import Provider
from ..providers._fal_models import FAL_MODELS, FalModel
from ..providers.fal import FalProvider
from ._harness import Feature, Operation, Received
from ._harness_served import ServedHarness
from ._server import serve_in_thread
from ._simulator import SimulatorApp, create_simulator_app
from ._simulator_fal import FAL_CDN, FAL_PATH
from ._simulator_state import Phase

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["FalSimulatorHarness"]

_ROUTES: Mapping[Operation, tuple[str, ...]] = {
    "create": ("fal_submit",),
    "status": ("fal_status",),
    "content": ("fal_files",),
    "cancel": ("fal_cancel",),
}
_FEATURES: tuple[Feature, ...] = (
    "http",
    "cancel",
    "progress",
    "queue_position",
    "empty_result",
    "expiry",
    "image_upload",
    "image_url",
)


class FalSimulatorHarness(ServedHarness):
    """A :class:`FalProvider` talking to a simulator served on 127.0.0.1 for the test's life.

    Keyword arguments go to :func:`create_simulator_app` (``render_seconds``, ``fail_prompts``,
    ...); ``adapter_options`` to :class:`FalProvider` (built with ``call_timeout``, short so
    that slow answers outlast it quickly, and with fal's storage at the simulator); ``model`` is
    the model the kit asks for. The adapter trusts a webhook key of the harness's own, so
    :meth:`signed_webhook` makes deliveries it accepts. Close it with :meth:`aclose`.
    """

    status_words: Mapping[str, Phase] = {
        "IN_QUEUE": "queued",
        "IN_PROGRESS": "in_progress",
        "COMPLETED": "completed",
        "CANCELED": "cancelled",
    }
    features: frozenset[Feature] = frozenset(_FEATURES)

    def __init__(
        self,
        *,
        adapter_options: Mapping[str, Any] | None = None,
        model: str | None = None,
        **simulator: Any,
    ) -> None:
        self.model = model
        # a fresh fake key per harness, which the kit hunts for in everything the adapter gives
        self.secret = "fal-key-canary-" + secrets.token_hex(12)
        self.app: SimulatorApp = create_simulator_app(api_key=self.secret, **simulator)
        self.routes = _ROUTES
        self._stack = ExitStack()
        self.url = self._stack.enter_context(serve_in_thread(self.app)) + FAL_PATH
        self._options = dict(adapter_options or {})
        self._signing_key = _signing_key()
        # unless the test brings its own keys (or a JWKS to fetch them from)
        own_keys = {"webhook_keys", "jwks_url"} & self._options.keys()
        if self._signing_key is not None and not own_keys:
            self._options["webhook_keys"] = [_raw_public(self._signing_key)]
        self._provider = self._build(self.url)
        self._others: list[Provider] = []

    def provider_at(self, base_url: str) -> Provider:
        """A second adapter configured alike, pointed at ``base_url``."""
        other = self._build(base_url)
        self._others.append(other)
        return other

    def job_id(self, external_id: str) -> str:
        """The request id at the end of the queue path is the simulator's job."""
        return _request_id(external_id)

    def received(self, external_id: str) -> Received:
        """The submitted input, read back through the model's field names."""
        job = self.app.state.jobs[self.job_id(external_id)]
        fields: dict[str, JsonValue] = json.loads(json.dumps(dict(job.fields)))
        return _received(fields, job.model, FAL_MODELS.get(job.model), self._uploaded)

    def signed_webhook(
        self, external_id: str, *, status: str = "OK", at: float | None = None
    ) -> tuple[dict[str, str], bytes]:
        """The headers and body of the webhook fal would deliver for ``external_id``, signed
        with the key the harness's adapter trusts (sent ``at`` unix seconds: now by default).

        Hand them to ``TaskManager.handle_webhook`` (or your own endpoint) to test the path
        without fal. Needs ``cryptography``.
        """
        if self._signing_key is None:
            raise ImportError(
                'signing fal webhooks needs cryptography: pip install "sora-tasks[fal]"'
            )
        request_id = _request_id(external_id)
        body = json.dumps(
            {"request_id": request_id, "gateway_request_id": request_id, "status": status,
             "payload": None, "error": None if status == "OK" else "the request failed"}
        ).encode()  # fmt: skip
        timestamp = str(int(time.time() if at is None else at))
        user_id = "simulated-user"
        message = "\n".join((request_id, user_id, timestamp, hashlib.sha256(body).hexdigest()))
        headers = {
            "X-Fal-Webhook-Request-Id": request_id,
            "X-Fal-Webhook-User-Id": user_id,
            "X-Fal-Webhook-Timestamp": timestamp,
            "X-Fal-Webhook-Signature": self._signing_key.sign(message.encode()).hex(),
        }
        return headers, body

    async def aclose(self) -> None:
        """Close the adapters and stop the server."""
        try:
            for provider in (self._provider, *self._others):
                await provider.aclose()
        finally:
            self._stack.close()

    def _build(self, base_url: str) -> FalProvider:
        # the simulator serves fal's storage beside the queue, as rest.fal.ai does for fal
        options = {"call_timeout": self.call_timeout, "storage_url": base_url, **self._options}
        return FalProvider(self.secret, base_url=base_url, **options)

    def _uploaded(self, url: str) -> bytes | None:
        """The bytes of a file uploaded to the simulator's storage, by its URL."""
        _, marker, file_id = url.partition(FAL_CDN + "/files/")
        upload = self.app.state.uploads.get(file_id) if marker else None
        return None if upload is None else upload.data


def _signing_key() -> Ed25519PrivateKey | None:
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    except ModuleNotFoundError:  # webhooks are then not simulated; the rest works without
        return None
    return Ed25519PrivateKey.generate()


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _request_id(external_id: str) -> str:
    return external_id.rpartition("/requests/")[2]


def _received(
    fields: dict[str, JsonValue],
    model_id: str,
    model: FalModel | None,
    uploaded: Callable[[str], bytes | None],
) -> Received:
    def _image(value: JsonValue) -> bytes | str | None:
        """A data URI back to its bytes, an uploaded file to its bytes; a URL as it is."""
        if not isinstance(value, str):
            return None
        if value.startswith("data:"):
            return base64.b64decode(value.partition(",")[2])
        found = uploaded(value)
        return value if found is None else found

    def take(name: str | None) -> JsonValue:
        return fields.pop(name, None) if name is not None else None

    prompt = str(take("prompt"))
    if model is None:
        image, last, references = take("image_url"), take("end_image_url"), take("image_urls")
        duration = aspect_ratio = resolution = negative = seed = audio = None
    else:
        image, last = take(model.image), take(model.last_frame)
        references = take(model.reference_images)
        duration, aspect_ratio = take("duration"), take("aspect_ratio")
        resolution = take("resolution")
        negative = take("negative_prompt") if model.negative_prompt else None
        seed = take("seed") if model.seed else None
        audio = take(model.audio)
    seconds = str(duration).rstrip("s") if duration is not None else None
    return Received(
        prompt=prompt,
        model=model_id,
        seconds=int(seconds) if seconds and seconds.isdigit() else None,
        aspect_ratio=aspect_ratio if isinstance(aspect_ratio, str) else None,
        resolution=resolution.lower() if isinstance(resolution, str) else None,
        negative_prompt=negative if isinstance(negative, str) else None,
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        audio=audio if isinstance(audio, bool) else None,
        image=_image(image),
        last_frame=_image(last),
        reference_images=tuple(
            found
            for found in (
                _image(item) for item in (references if isinstance(references, list) else [])
            )
            if found is not None
        ),
        options=fields,
    )
