"""fal's storage: images uploaded to fal's CDN, for requests that should carry URLs, not bytes.

Two calls, as fal's client makes them: ``POST {rest}/storage/auth/token?storage_type=fal-cdn-v3``
with the API key answers a short-lived upload token (``token``, ``token_type``, ``base_url``,
``expires_at``); ``POST {base_url}/files/upload`` with the image as the body and the token as
``Authorization`` answers the file's ``access_url``. The token is kept until a minute before it
expires. Source: ``fal-ai/fal``, ``projects/fal_client/src/fal_client/client.py``
(``AsyncCDNTokenManager``, ``_async_upload_v3``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio
import httpx2
from pydantic import SecretStr

from .._exceptions import ProviderResponseError
from .._models import ImageData
from .._secrets import register_secret
from ._http import ProviderClient
from ._parsing import first_string, json_object, parse_timestamp

__all__ = ["DEFAULT_STORAGE_URL", "FalStorage"]

DEFAULT_STORAGE_URL = "https://rest.fal.ai"
_TOKEN_PATH = "storage/auth/token"  # noqa: S105 - a path, not a secret
_EARLY = timedelta(minutes=1)  # a token this close to expiry is renewed first


@dataclass(frozen=True, slots=True)
class _Token:
    authorization: str
    upload: ProviderClient
    expires_at: datetime


class FalStorage:
    """Uploads images to fal's CDN and answers their URLs."""

    def __init__(
        self,
        api_key: SecretStr,
        *,
        storage_url: str = DEFAULT_STORAGE_URL,
        client: httpx2.AsyncClient | None = None,
        call_timeout: float,
        object_lifetime: int | None = None,
        name: str = "fal",
    ) -> None:
        self._name = name
        self._client = client
        self._call_timeout = call_timeout
        self._rest = ProviderClient(
            provider=f"{name} storage",
            base_url=storage_url,
            api_key=api_key,
            auth_scheme="Key",
            client=client,
            call_timeout=call_timeout,
        )
        self._headers: dict[str, str] = {}
        if object_lifetime is not None:
            preference = json.dumps({"expiration_duration_seconds": object_lifetime})
            self._headers["X-Fal-Object-Lifecycle"] = preference
        self._token: _Token | None = None
        self._retired: list[ProviderClient] = []
        self._lock = anyio.Lock()

    async def upload(self, image: ImageData) -> str:
        """The URL of ``image`` once uploaded."""
        token = await self._current()
        headers = {
            **self._headers,
            "Authorization": token.authorization,
            "Content-Type": image.mime_type,
            "X-Fal-File-Name": image.filename,
        }
        response = await token.upload.request(
            "POST", "files/upload", content=image.data, headers=headers
        )
        url = first_string(self._object(response), ("access_url", "url"))
        if url is None or not url.startswith(("https://", "http://")):
            raise self._unreadable("the upload answer names no access_url")
        return url

    async def aclose(self) -> None:
        """Close the HTTP clients made here (never an injected one)."""
        clients = [self._rest, *self._retired]
        if self._token is not None:
            clients.append(self._token.upload)
        for client in clients:
            await client.aclose()

    async def _current(self) -> _Token:
        async with self._lock:
            token = self._token
            if token is None or token.expires_at - _EARLY <= datetime.now(UTC):
                if token is not None:
                    self._retired.append(token.upload)
                token = self._token = await self._new_token()
            return token

    async def _new_token(self) -> _Token:
        response = await self._rest.request(
            "POST", _TOKEN_PATH, params={"storage_type": "fal-cdn-v3"}, json={}
        )
        data = self._object(response)
        token = first_string(data, ("token",))
        kind = first_string(data, ("token_type",)) or "Bearer"
        base_url = first_string(data, ("base_url",))
        if token is None or base_url is None or not base_url.startswith(("https://", "http://")):
            raise self._unreadable("the storage token answer lacks token or base_url")
        register_secret(token)
        expires_at = parse_timestamp(data.get("expires_at")) or datetime.now(UTC) + _EARLY * 2
        upload = ProviderClient(
            provider=f"{self._name} storage",
            base_url=base_url,
            api_key=None,
            client=self._client,
            call_timeout=self._call_timeout,
        )
        return _Token(f"{kind} {token}", upload, expires_at)

    def _object(self, response: httpx2.Response) -> dict[str, object]:
        try:
            return json_object(response.content)
        except ValueError as exc:
            raise self._unreadable(str(exc)) from None

    def _unreadable(self, why: str) -> ProviderResponseError:
        return ProviderResponseError(
            f"unreadable answer from {self._name}'s storage: {why}", provider=self._name
        )
