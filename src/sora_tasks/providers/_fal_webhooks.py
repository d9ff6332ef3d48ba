"""fal's webhook signatures: Ed25519 over request id, user id, timestamp and the body's SHA-256.

fal signs ``"{request_id}\\n{user_id}\\n{timestamp}\\n{sha256 hex of the raw body}"`` and sends
the hex signature in ``X-Fal-Webhook-Signature`` beside ``X-Fal-Webhook-Request-Id``,
``-User-Id`` and ``-Timestamp``; the public keys are a JWKS (``kty`` OKP, ``crv`` Ed25519) at
``https://rest.alpha.fal.ai/.well-known/jwks.json``. The signature names no key, so every key of
the set is tried; when none matches, the set is fetched again (at most once a minute), since fal
may have rotated its key. Timestamps more than 300 s off are refused. Source:
https://docs.fal.ai/model-endpoints/webhooks. Needs ``cryptography`` (``sora-tasks[fal]``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import httpx2

from .._exceptions import ProviderError, WebhookVerificationError
from ._http import ProviderClient
from ._parsing import json_object

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["DEFAULT_JWKS_URL", "FalWebhook", "FalWebhookVerifier"]

DEFAULT_JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"
TOLERANCE_SECONDS = 300
_HEADERS = {
    "request_id": "x-fal-webhook-request-id",
    "user_id": "x-fal-webhook-user-id",
    "timestamp": "x-fal-webhook-timestamp",
    "signature": "x-fal-webhook-signature",
}
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE = re.compile(r"^[0-9a-fA-F]{128}$")
_MAX_ID_CHARS = 255


@dataclass(frozen=True, slots=True)
class FalWebhook:
    """A delivery whose signature checked out: the request it is about and when it was sent."""

    request_id: str
    user_id: str
    timestamp: int


class FalWebhookVerifier:
    """Checks fal webhook deliveries against fal's published keys.

    ``keys`` (raw 32-byte Ed25519 public keys) replaces the JWKS fetch, for tests and for
    deployments that pin the keys; otherwise the set at ``jwks_url`` is fetched through
    ``client`` (an ``httpx2.AsyncClient``; one is made when ``None``) and kept ``ttl`` seconds.
    """

    def __init__(
        self,
        *,
        keys: Iterable[bytes] | None = None,
        jwks_url: str = DEFAULT_JWKS_URL,
        client: httpx2.AsyncClient | None = None,
        ttl: float = 24 * 3600,
        refresh_floor: float = 60.0,
        clock: Callable[[], float] = time.time,
        name: str = "fal",
    ) -> None:
        try:
            import cryptography  # noqa: F401 - only checked for here, used where keys are read
        except ModuleNotFoundError:
            raise ImportError(
                'verifying fal webhooks needs cryptography: pip install "sora-tasks[fal]"'
            ) from None
        self._pinned = None if keys is None else [_public_key(key) for key in keys]
        url = httpx2.URL(jwks_url)
        self._path = url.raw_path.decode("ascii").lstrip("/")
        self._http = ProviderClient(
            provider=f"{name} jwks",
            base_url=str(url.copy_with(raw_path=b"/", query=None)),
            api_key=None,
            client=client,
            call_timeout=30.0,
        )
        self._ttl = ttl
        self._refresh_floor = refresh_floor
        self._clock = clock
        self._keys: list[Ed25519PublicKey] = []
        self._fetched_at: float | None = None
        self._lock = anyio.Lock()

    async def verify(self, headers: Mapping[str, str], body: bytes) -> FalWebhook:
        """The delivery's request, or :class:`WebhookVerificationError` when it is not fal's."""
        values = _signed_headers(headers)
        timestamp = int(values["timestamp"])
        now = self._clock()
        if abs(now - timestamp) > TOLERANCE_SECONDS:
            raise WebhookVerificationError(
                f"fal webhook timestamp is {round(now - timestamp)} s off; the limit is "
                f"{TOLERANCE_SECONDS} s either way"
            )
        message = "\n".join(
            (
                values["request_id"],
                values["user_id"],
                values["timestamp"],
                hashlib.sha256(body).hexdigest(),
            )
        ).encode()
        signature = bytes.fromhex(values["signature"])
        if not any(_valid(key, signature, message) for key in await self._current_keys()):
            if self._pinned is not None or not await self._refresh_if_allowed():
                raise _refused(values["request_id"])
            if not any(_valid(key, signature, message) for key in self._keys):
                raise _refused(values["request_id"])
        return FalWebhook(values["request_id"], values["user_id"], timestamp)

    async def aclose(self) -> None:
        """Close the HTTP client made here (never an injected one)."""
        await self._http.aclose()

    async def _current_keys(self) -> list[Ed25519PublicKey]:
        if self._pinned is not None:
            return self._pinned
        async with self._lock:
            stale = self._fetched_at is None or self._clock() - self._fetched_at > self._ttl
            if stale:
                await self._fetch()
            return self._keys

    async def _refresh_if_allowed(self) -> bool:
        """Fetch the set again unless it was fetched within ``refresh_floor`` seconds."""
        async with self._lock:
            if self._fetched_at is not None and (
                self._clock() - self._fetched_at < self._refresh_floor
            ):
                return False
            await self._fetch()
            return True

    async def _fetch(self) -> None:
        try:
            response = await self._http.request("GET", self._path)
            data = json_object(response.content)
        except (ProviderError, ValueError) as exc:
            raise WebhookVerificationError(f"fal's webhook keys could not be read: {exc}") from None
        keys = data.get("keys")
        found: list[Ed25519PublicKey] = []
        for entry in keys if isinstance(keys, list) else []:
            if not isinstance(entry, dict):
                continue
            if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
                continue
            x = entry.get("x")
            if isinstance(x, str):
                try:
                    found.append(_public_key(_b64url(x)))
                except ValueError:
                    continue
        if not found:
            raise WebhookVerificationError("fal's webhook key set holds no Ed25519 key")
        self._keys = found
        self._fetched_at = self._clock()


def _signed_headers(headers: Mapping[str, str]) -> dict[str, str]:
    lowered = {name.lower(): value.strip() for name, value in headers.items()}
    missing = [header for header in _HEADERS.values() if not lowered.get(header)]
    if missing:
        raise WebhookVerificationError(f"fal webhook is missing header(s): {', '.join(missing)}")
    values = {name: lowered[header] for name, header in _HEADERS.items()}
    for name in ("request_id", "user_id"):
        if len(values[name]) > _MAX_ID_CHARS or "\n" in values[name]:
            raise WebhookVerificationError(
                f"fal webhook {name} is malformed (at most {_MAX_ID_CHARS} characters, one line)"
            )
    if not _TIMESTAMP.match(values["timestamp"]):
        raise WebhookVerificationError("fal webhook timestamp must be whole unix seconds")
    if not _SIGNATURE.match(values["signature"]):
        raise WebhookVerificationError("fal webhook signature must be 64 bytes in hex")
    return values


def _refused(request_id: str) -> WebhookVerificationError:
    return WebhookVerificationError(
        f"fal webhook for request {request_id!r} refused: no fal key verifies its signature"
    )


def _public_key(raw: bytes) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, not {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def _valid(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _b64url(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None
