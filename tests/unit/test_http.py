"""The HTTP seam: retries as the policy says, errors mapped once, credentials kept home."""

from __future__ import annotations

import gzip
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpcore2
import httpx
import httpx2
import pytest
import respx
from pydantic import SecretStr

from sora_tasks._exceptions import (
    DownloadError,
    ProviderAuthError,
    ProviderError,
    ProviderHTTPError,
    ProviderRateLimitError,
    ProviderRejectedError,
    ProviderServerError,
    ProviderTransportError,
    SubmissionUncertainError,
)
from sora_tasks._retry import Backoff
from sora_tasks.providers._http import DEFAULT_TIMEOUT, ProviderClient, redact_headers

pytestmark = pytest.mark.anyio

CANARY = "sk-canary-http-5b2e-DO-NOT-LEAK"
BASE = "https://api.test/v1"
VIDEOS = f"{BASE}/videos"


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@asynccontextmanager
async def make_client(sleeps: Sleeps, **kwargs: Any) -> AsyncIterator[ProviderClient]:
    options: dict[str, Any] = {
        "provider": "test",
        "base_url": BASE,
        "api_key": SecretStr(CANARY),
        "sleep": sleeps,
        "random_source": lambda: 0.0,
        **kwargs,
    }
    client = ProviderClient(**options)
    try:
        yield client
    finally:
        await client.aclose()


async def get(client: ProviderClient, path: str = "videos") -> httpx2.Response:
    return await client.request("GET", path)


async def create(client: ProviderClient) -> httpx2.Response:
    return await client.request("POST", "/videos", create=True, json={"prompt": "x"})


class _Broken(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"half"
        raise httpcore2.RemoteProtocolError("peer closed connection")


# --- success and headers ---------------------------------------------------------------


async def test_request_sends_bearer_key_and_user_agent(
    httpx2_mock: respx.Router, sleeps: Sleeps
) -> None:
    route = httpx2_mock.get(VIDEOS).respond(200, json={"ok": True})
    async with make_client(sleeps) as client:
        response = await get(client)
    assert response.json() == {"ok": True}
    sent = route.calls.last.request
    assert sent.headers["authorization"] == f"Bearer {CANARY}"
    assert sent.headers["user-agent"].startswith("sora-tasks")


async def test_raw_auth_scheme_and_custom_header(httpx2_mock: respx.Router, sleeps: Sleeps) -> None:
    route = httpx2_mock.get(VIDEOS).respond(200)
    async with make_client(sleeps, auth_header="X-Api-Key", auth_scheme=None) as client:
        await get(client)
    sent = route.calls.last.request
    assert sent.headers["x-api-key"] == CANARY
    assert "authorization" not in sent.headers


async def test_default_timeouts_connect_5_read_60(
    httpx2_mock: respx.Router, sleeps: Sleeps
) -> None:
    route = httpx2_mock.get(VIDEOS).respond(200)
    async with make_client(sleeps) as client:
        await get(client)
    timeout = route.calls.last.request.extensions["timeout"]
    assert timeout == DEFAULT_TIMEOUT.as_dict()
    assert timeout["connect"] == 5.0
    assert timeout["read"] == 60.0


async def test_configured_timeout_applies_to_an_injected_client(
    httpx2_mock: respx.Router, sleeps: Sleeps
) -> None:
    route = httpx2_mock.get(VIDEOS).respond(200)
    async with (
        httpx2.AsyncClient() as shared,
        make_client(sleeps, client=shared, timeout=httpx2.Timeout(9.0, connect=2.0)) as client,
    ):
        await get(client)
    assert route.calls.last.request.extensions["timeout"]["connect"] == 2.0
    assert route.calls.last.request.extensions["timeout"]["read"] == 9.0


async def test_injected_client_is_not_closed(httpx2_mock: respx.Router, sleeps: Sleeps) -> None:
    httpx2_mock.get(VIDEOS).respond(200)
    async with httpx2.AsyncClient() as shared:
        async with make_client(sleeps, client=shared):
            pass
        assert not shared.is_closed
        assert (await shared.get(VIDEOS)).status_code == 200


async def test_own_client_is_closed(sleeps: Sleeps) -> None:
    async with make_client(sleeps) as client:
        pass
    with pytest.raises(RuntimeError):
        await get(client)


# --- status mapping ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, ProviderRejectedError),
        (401, ProviderAuthError),
        (403, ProviderAuthError),
        (404, ProviderRejectedError),
        (422, ProviderRejectedError),
    ],
)
async def test_final_4xx_is_not_retried(
    httpx2_mock: respx.Router, sleeps: Sleeps, status: int, error: type[ProviderHTTPError]
) -> None:
    body = {"error": {"code": "bad_thing", "message": "that will never work", "type": "x"}}
    route = httpx2_mock.get(VIDEOS).respond(status, json=body)
    async with make_client(sleeps) as client:
        with pytest.raises(error) as caught:
            await get(client)
    assert route.call_count == 1
    assert sleeps == []
    assert caught.value.status_code == status
    assert caught.value.code == "bad_thing"
    assert "that will never work" in str(caught.value)
    assert "GET https://api.test/v1/videos" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b'{"error": "quota exhausted"}', None, "quota exhausted"),
        (b'{"error_code": "E42", "message": "nope"}', "E42", "nope"),
        (b'{"code": 1001, "msg": "bad size"}', "1001", "bad size"),
        (b'{"detail": "not found"}', None, "not found"),
        (b"<html><body>Bad  Gateway</body></html>", None, "<html><body>Bad Gateway</body></html>"),
        (b"", None, None),
    ],
)
async def test_error_body_shapes(
    httpx2_mock: respx.Router, sleeps: Sleeps, body: bytes, code: str | None, message: str | None
) -> None:
    httpx2_mock.get(VIDEOS).respond(400, content=body)
    async with make_client(sleeps) as client:
        with pytest.raises(ProviderRejectedError) as caught:
            await get(client)
    assert caught.value.code == code
    if message is None:
        assert str(caught.value).endswith("400 Bad Request")
    else:
        assert str(caught.value).endswith(message)


async def test_long_error_text_is_clipped(httpx2_mock: respx.Router, sleeps: Sleeps) -> None:
    httpx2_mock.get(VIDEOS).respond(400, content=b"x" * 10_000)
    async with make_client(sleeps) as client:
        with pytest.raises(ProviderRejectedError) as caught:
            await get(client)
    assert len(str(caught.value)) < 600


# --- retries on reads --------------------------------------------------------------------


async def test_429_then_success_honours_retry_after(
    httpx2_mock: respx.Router, sleeps: Sleeps
) -> None:
    route = httpx2_mock.get(VIDEOS).mock(
        side_effect=[httpx.Response(429, headers={"retry-after": "3"}), httpx.Response(200)]
    )
    async with make_client(sleeps) as client:
        response = await get(client)
    assert response.status_code == 200
    assert route.call_count == 2
    assert sleeps == [3.0]


async def test_500_on_read_is_retried_with_backoff_within_budget(
    httpx2_mock: respx.Router, sleeps: Sleeps
) -> None:
    route = httpx2_mock.get(VIDEOS).mock(
        side_effect=[httpx.Response(500), httpx.Response(502), httpx.Response(200)]
    )
    async with make_client(sleeps) as client:
        assert (await get(client)).status_code == 200
    assert route.call_count == 3
    assert sleeps == [0.5, 1.0]


async def test_500_on_read_gives_up_after_the_budget(
    httpx2_mock: respx.Router, sleeps: Sleeps
) -> None:
    route = httpx2_mock.get(VIDEOS).respond(500, json={"error": {"message": "oops"}})
    async with make_client(sleeps, max_retries=3) as client:
        with pytest.raises(ProviderServerError) as caught:
            await get(client)
    assert route.call_count == 4
    assert sleeps == [0.5, 1.0, 2.0]
    assert caught.value.status_code == 500
    assert caught.value.retryable


async def test_zero_retries_sends_once(httpx2_mock: respx.Router, sleeps: Sleeps) -> None:
    route = httpx2_mock.get(VIDEOS).respond(503)
    async with make_client(sleeps, max_retries=0) as client:
        with pytest.raises(ProviderServerError):
            await get(client)
    assert route.call_count == 1


@pytest.mark.parametrize("status", [408, 409])
async def test_408_and_409_on_read_are_retried(
    httpx2_mock: respx.Router, sleeps: Sleeps, status: int
) -> None:
    route = httpx2_mock.get(VIDEOS).mock(side_effect=[httpx.Response(status), httpx.Response(200)])
    async with make_client(sleeps) as client:
        await get(client)
    assert route.call_count == 2


async def test_should_retry_false_stops_a_read_retry(
    httpx2_mock: respx.Router, sleeps: Sleeps
) -> None:
    route = httpx2_mock.get(VIDEOS).respond(500, headers={"x-should-retry": "false"})
    async with make_client(sleeps) as client:
        with pytest.raises(ProviderServerError):
            await get(client)
    assert route.call_count == 1


async def test_should_retry_true_retries_a_read_400(
    httpx2_mock: respx.Router, sleeps: Sleeps
) -> None:
    route = httpx2_mock.get(VIDEOS).mock(
        side_effect=[httpx.Response(400, headers={"x-should-retry": "true"}), httpx.Response(200)]
    )
    async with make_client(sleeps) as client:
        await get(client)
    assert route.call_count == 2


async def test_wait_over_the_sleep_cap_is_reported_not_slept(
    httpx2_mock: respx.Router, sleeps: Sleeps
) -> None:
    route = httpx2_mock.get(VIDEOS).respond(429, headers={"retry-after": "600"})
    async with make_client(sleeps) as client:
        with pytest.raises(ProviderRateLimitError) as caught:
            await get(client)
    assert route.call_count == 1
    assert sleeps == []
    assert caught.value.retry_after == 600.0


async def test_custom_sleep_cap(httpx2_mock: respx.Router, sleeps: Sleeps) -> None:
    route = httpx2_mock.get(VIDEOS).respond(429, headers={"retry-after-ms": "2000"})
    async with make_client(sleeps, backoff=Backoff(max_sleep=1.0)) as client:
        with pytest.raises(ProviderRateLimitError) as caught:
            await get(client)
    assert route.call_count == 1
    assert caught.value.retry_after == 2.0


async def test_exhausted_429_carries_the_last_hint(
    httpx2_mock: respx.Router, sleeps: Sleeps
) -> None:
    httpx2_mock.get(VIDEOS).respond(429, headers={"retry-after-ms": "250"})
    async with make_client(sleeps) as client:
        with pytest.raises(ProviderRateLimitError) as caught:
            await get(client)
    assert sleeps == [0.25, 0.25]
    assert caught.value.retry_after == 0.25


@pytest.mark.parametrize(
    "failure",
    [
        httpcore2.ReadTimeout,
        httpcore2.ReadError,
        httpcore2.RemoteProtocolError,
        httpcore2.ConnectError,
    ],
)
async def test_transport_errors_on_read_are_retried(
    httpx2_mock: respx.Router, sleeps: Sleeps, failure: type[Exception]
) -> None:
    route = httpx2_mock.get(VIDEOS).mock(side_effect=[failure("boom"), httpx.Response(200)])
    async with make_client(sleeps) as client:
        assert (await get(client)).status_code == 200
    assert route.call_count == 2


async def test_transport_error_on_read_gives_up_as_transport_error(
    httpx2_mock: respx.Router, sleeps: Sleeps
) -> None:
    route = httpx2_mock.get(VIDEOS).mock(side_effect=httpcore2.ReadTimeout("slow"))
    async with make_client(sleeps) as client:
        with pytest.raises(ProviderTransportError, match="ReadTimeout"):
            await get(client)
    assert route.call_count == 3


# --- create safety -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        httpcore2.ReadTimeout,
        httpcore2.ReadError,
        httpcore2.RemoteProtocolError,
        httpcore2.WriteTimeout,
        httpcore2.WriteError,
    ],
)
async def test_create_that_may_have_been_sent_is_uncertain_and_sent_once(
    httpx2_mock: respx.Router, sleeps: Sleeps, failure: type[Exception]
) -> None:
    route = httpx2_mock.post(VIDEOS).mock(side_effect=failure("gone"))
    async with make_client(sleeps) as client:
        with pytest.raises(SubmissionUncertainError, match="may have started"):
            await create(client)
    assert route.call_count == 1
    assert sleeps == []


async def test_create_whose_answer_breaks_off_is_uncertain(
    httpx2_mock: respx.Router, sleeps: Sleeps
) -> None:
    route = httpx2_mock.post(VIDEOS).mock(
        return_value=httpx.Response(200, headers={"content-length": "100"}, stream=_Broken())
    )
    async with make_client(sleeps) as client:
        with pytest.raises(SubmissionUncertainError):
            await create(client)
    assert route.call_count == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 409])
async def test_create_answered_with_a_possible_start_is_uncertain(
    httpx2_mock: respx.Router, sleeps: Sleeps, status: int
) -> None:
    route = httpx2_mock.post(VIDEOS).respond(status, headers={"x-should-retry": "true"})
    async with make_client(sleeps) as client:
        with pytest.raises(SubmissionUncertainError) as caught:
            await create(client)
    assert route.call_count == 1
    assert isinstance(caught.value.__cause__, ProviderError)


@pytest.mark.parametrize(
    "failure",
    [
        httpcore2.ConnectError,
        httpcore2.ConnectTimeout,
        httpcore2.PoolTimeout,
        httpcore2.LocalProtocolError,
        httpcore2.UnsupportedProtocol,
    ],
)
async def test_create_that_never_connected_is_retried(
    httpx2_mock: respx.Router, sleeps: Sleeps, failure: type[Exception]
) -> None:
    route = httpx2_mock.post(VIDEOS).mock(
        side_effect=[failure("refused"), httpx.Response(200, json={"id": "v1"})]
    )
    async with make_client(sleeps) as client:
        response = await create(client)
    assert response.json() == {"id": "v1"}
    assert route.call_count == 2
    assert route.calls[0].request.content == route.calls[1].request.content


async def test_create_that_never_connected_gives_up_as_transport_error(
    httpx2_mock: respx.Router, sleeps: Sleeps
) -> None:
    route = httpx2_mock.post(VIDEOS).mock(side_effect=httpcore2.ConnectError("refused"))
    async with make_client(sleeps) as client:
        with pytest.raises(ProviderTransportError) as caught:
            await create(client)
    assert not isinstance(caught.value, SubmissionUncertainError)
    assert route.call_count == 3


async def test_create_429_is_retried_then_reported_as_rate_limit(
    httpx2_mock: respx.Router, sleeps: Sleeps
) -> None:
    route = httpx2_mock.post(VIDEOS).respond(429, headers={"retry-after-ms": "10"})
    async with make_client(sleeps) as client:
        with pytest.raises(ProviderRateLimitError):
            await create(client)
    assert route.call_count == 3


async def test_create_503_with_retry_after_is_retried(
    httpx2_mock: respx.Router, sleeps: Sleeps
) -> None:
    route = httpx2_mock.post(VIDEOS).mock(
        side_effect=[httpx.Response(503, headers={"retry-after": "1"}), httpx.Response(200)]
    )
    async with make_client(sleeps) as client:
        await create(client)
    assert route.call_count == 2
    assert sleeps == [1.0]


async def test_create_400_is_final(httpx2_mock: respx.Router, sleeps: Sleeps) -> None:
    route = httpx2_mock.post(VIDEOS).respond(400, json={"error": {"message": "bad prompt"}})
    async with make_client(sleeps) as client:
        with pytest.raises(ProviderRejectedError, match="bad prompt"):
            await create(client)
    assert route.call_count == 1


# --- content streaming and redirects -----------------------------------------------------

CONTENT = f"{VIDEOS}/v1/content"


async def read_all(
    client: ProviderClient, url: str = CONTENT
) -> tuple[bytes, int | None, str | None]:
    async with client.stream(url, params={"variant": "video"}) as stream:
        chunks = [chunk async for chunk in stream.aiter_bytes()]
        return b"".join(chunks), stream.content_length, stream.content_type


async def test_stream_exposes_length_and_type(httpx2_mock: respx.Router, sleeps: Sleeps) -> None:
    route = httpx2_mock.get(CONTENT).respond(
        200, content=b"\x00mp4data", headers={"content-type": "video/mp4"}
    )
    async with make_client(sleeps) as client:
        body, length, kind = await read_all(client)
    assert (body, length, kind) == (b"\x00mp4data", 8, "video/mp4")
    sent = route.calls.last.request
    assert sent.url.params["variant"] == "video"
    assert sent.headers["accept-encoding"] == "identity"


async def test_encoded_stream_reports_no_length(httpx2_mock: respx.Router, sleeps: Sleeps) -> None:
    packed = gzip.compress(b"video" * 100)
    httpx2_mock.get(CONTENT).respond(200, content=packed, headers={"content-encoding": "gzip"})
    async with make_client(sleeps) as client:
        body, length, _ = await read_all(client)
    assert body == b"video" * 100
    assert length is None


async def test_redirect_off_origin_drops_credentials(
    httpx2_mock: respx.Router, sleeps: Sleeps
) -> None:
    httpx2_mock.get(CONTENT).respond(302, headers={"location": "https://cdn.test/v.mp4?sig=abc"})
    cdn = httpx2_mock.get("https://cdn.test/v.mp4").respond(200, content=b"bytes")
    async with make_client(sleeps) as client:
        body, _, _ = await read_all(client)
    assert body == b"bytes"
    sent = cdn.calls.last.request
    assert "authorization" not in sent.headers
    assert sent.url.params["sig"] == "abc"
    assert "variant" not in sent.url.params


@pytest.mark.parametrize(
    "location",
    ["http://api.test/v1/videos/v1/file", "https://api.test:8443/file", "https://other.api.test/f"],
)
async def test_redirect_to_another_scheme_port_or_host_is_off_origin(
    httpx2_mock: respx.Router, sleeps: Sleeps, location: str
) -> None:
    httpx2_mock.get(CONTENT).respond(307, headers={"location": location})
    target = httpx2_mock.get(location).respond(200, content=b"ok")
    async with make_client(sleeps) as client:
        await read_all(client)
    assert "authorization" not in target.calls.last.request.headers


async def test_redirect_on_origin_keeps_credentials(
    httpx2_mock: respx.Router, sleeps: Sleeps
) -> None:
    httpx2_mock.get(CONTENT).respond(301, headers={"location": "/v1/files/abc"})
    same = httpx2_mock.get("https://api.test:443/v1/files/abc").respond(200, content=b"ok")
    async with make_client(sleeps) as client:
        await read_all(client)
    assert same.calls.last.request.headers["authorization"] == f"Bearer {CANARY}"


async def test_off_origin_redirect_strips_auth_set_on_an_injected_client(
    httpx2_mock: respx.Router, sleeps: Sleeps
) -> None:
    httpx2_mock.get(CONTENT).respond(302, headers={"location": "https://cdn.test/v.mp4"})
    cdn = httpx2_mock.get("https://cdn.test/v.mp4").respond(200, content=b"ok")
    headers = {"Authorization": "Bearer client-level", "X-Api-Key": "client-level"}
    async with (
        httpx2.AsyncClient(headers=headers, auth=("user", "pass")) as shared,
        make_client(sleeps, client=shared) as client,
    ):
        await read_all(client)
    sent = cdn.calls.last.request.headers
    assert "authorization" not in sent
    assert "x-api-key" not in sent


async def test_redirects_are_capped(httpx2_mock: respx.Router, sleeps: Sleeps) -> None:
    loop = httpx2_mock.get(CONTENT).respond(302, headers={"location": CONTENT})
    async with make_client(sleeps, max_redirects=3) as client:
        with pytest.raises(DownloadError, match="more than 3 redirects"):
            await read_all(client)
    assert loop.call_count == 4


async def test_redirect_to_a_non_http_scheme_is_refused(
    httpx2_mock: respx.Router, sleeps: Sleeps
) -> None:
    httpx2_mock.get(CONTENT).respond(302, headers={"location": "ftp://files.test/v.mp4"})
    async with make_client(sleeps) as client:
        with pytest.raises(DownloadError, match="'ftp'"):
            await read_all(client)


async def test_content_404_is_rejected_with_its_status(
    httpx2_mock: respx.Router, sleeps: Sleeps
) -> None:
    route = httpx2_mock.get(CONTENT).respond(404, json={"error": {"message": "no such video"}})
    async with make_client(sleeps) as client:
        with pytest.raises(ProviderRejectedError, match="no such video") as caught:
            await read_all(client)
    assert caught.value.status_code == 404
    assert route.call_count == 1


async def test_content_500_is_retried_before_streaming(
    httpx2_mock: respx.Router, sleeps: Sleeps
) -> None:
    route = httpx2_mock.get(CONTENT).mock(
        side_effect=[httpx.Response(500), httpx.Response(200, content=b"ok")]
    )
    async with make_client(sleeps) as client:
        body, _, _ = await read_all(client)
    assert body == b"ok"
    assert route.call_count == 2


async def test_a_body_cut_off_is_a_download_error(
    httpx2_mock: respx.Router, sleeps: Sleeps
) -> None:
    httpx2_mock.get(CONTENT).mock(
        return_value=httpx.Response(200, headers={"content-length": "100"}, stream=_Broken())
    )
    async with make_client(sleeps) as client:
        with pytest.raises(DownloadError, match="after 4 bytes"):
            await read_all(client)


# --- secrets -----------------------------------------------------------------------------


def test_redact_headers() -> None:
    headers = [("Authorization", "Bearer x"), ("X-Key", "k"), ("Accept", "*/*")]
    assert redact_headers(headers, {"authorization", "x-key"}) == {
        "Authorization": "[redacted]",
        "X-Key": "[redacted]",
        "Accept": "*/*",
    }


async def test_canary_key_never_leaks(
    httpx2_mock: respx.Router, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = {"error": {"code": "invalid_api_key", "message": f"Incorrect API key {CANARY}"}}
    httpx2_mock.get(f"{VIDEOS}/a").respond(401, json=echo)
    httpx2_mock.get(f"{VIDEOS}/b").mock(side_effect=[httpx.Response(500), httpx.Response(200)])
    httpx2_mock.post(VIDEOS).mock(side_effect=httpcore2.ReadTimeout("slow"))
    httpx2_mock.get(CONTENT).respond(302, headers={"location": "https://cdn.test/v"})
    httpx2_mock.get("https://cdn.test/v").respond(200, content=b"ok")
    texts: list[str] = []
    async with make_client(sleeps) as client:
        texts += [repr(client), str(client)]
        with pytest.raises(ProviderAuthError) as auth:
            await get(client, "videos/a")
        with pytest.raises(SubmissionUncertainError) as uncertain:
            await create(client)
        await get(client, "videos/b")
        await read_all(client)
    for error in (auth.value, uncertain.value):
        texts += [str(error), repr(error), str(error.__cause__), repr(error.args)]
    assert "[redacted]" in str(auth.value)
    texts += [record.getMessage() + repr(record.__dict__) for record in caplog.records]
    assert any("[redacted]" in record.getMessage() for record in caplog.records)
    for text in texts:
        assert CANARY not in text
