"""Google Cloud credentials as an ``httpx2.Auth``: a bearer token, refreshed off the event loop.

google-auth's ``refresh`` is blocking I/O (a token endpoint, or the metadata server), so it runs in
a worker thread, one refresh at a time. Without credentials, Application Default Credentials are
looked up on the first request (in that thread too). Every token is registered as a secret, so
it is masked wherever the library writes text.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any

import anyio
import anyio.to_thread
import httpx2

from .._exceptions import ProviderTransportError
from .._secrets import register_secret

__all__ = ["CLOUD_PLATFORM_SCOPE", "GoogleAuth"]

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


class GoogleAuth(httpx2.Auth):
    """Adds ``Authorization: Bearer <token>`` from ``credentials`` (google-auth), or from ADC."""

    def __init__(self, credentials: Any = None, *, provider: str = "veo") -> None:
        self._credentials = credentials
        self._provider = provider
        self._lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self._credentials).__name__})"

    def sync_auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, Any, None]:
        raise RuntimeError("GoogleAuth refreshes tokens off the event loop: use an async client")

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        request.headers["Authorization"] = f"Bearer {await self.token()}"
        yield request

    async def token(self) -> str:
        """A valid access token, refreshed first (in a worker thread) when it is not."""
        async with self._lock:
            if self._credentials is None or not getattr(self._credentials, "valid", False):
                try:
                    await anyio.to_thread.run_sync(self._refresh)
                except Exception as exc:  # google-auth's errors share no base class we can name
                    # nothing was sent: the call can be tried again once the token service answers
                    raise ProviderTransportError(
                        f"could not get a Google Cloud access token: {type(exc).__name__}: {exc}",
                        provider=self._provider,
                    ) from None
            token = getattr(self._credentials, "token", None)
            if not isinstance(token, str) or not token:
                raise ProviderTransportError(
                    "the Google Cloud credentials gave no access token", provider=self._provider
                )
            register_secret(token)
            return token

    def _refresh(self) -> None:
        try:
            import google.auth
            from google.auth.transport.requests import Request
        except ImportError:
            raise ImportError(
                'Vertex AI needs google-auth: pip install "sora-tasks[vertex]"'
            ) from None
        if self._credentials is None:
            self._credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
        self._credentials.refresh(Request())
