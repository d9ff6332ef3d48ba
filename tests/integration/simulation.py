"""Helpers for tests against the simulator: a clock tests move by hand, and contract checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

_CONTRACT = "shared/contracts/openai-videos-openapi.yaml"
_SPEC_ORIGIN = "https://api.openai.com"


class ManualClock:
    """A monotonic clock that only moves when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@cache
def _openapi() -> OpenAPI:
    for folder in Path(__file__).resolve().parents:
        spec = folder / _CONTRACT
        if spec.is_file():
            return OpenAPI.from_file_path(str(spec))
    pytest.skip(f"the contract {_CONTRACT} is not beside the repository")


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


def check_contract(response: httpx2.Response) -> None:
    """Fail unless ``response`` from the simulator's ``/v1/videos`` routes matches the contract."""
    request = response.request
    url = urlsplit(str(request.url))
    openapi_request = _Request(
        host_url=_SPEC_ORIGIN,
        path=url.path,
        method=request.method.lower(),
        body=None,
        content_type=request.headers.get("content-type", ""),
        parameters=RequestParameters(
            query=ImmutableMultiDict(list(request.url.params.multi_items())),
            header=Headers(dict(request.headers)),
        ),
    )
    openapi_response = _Response(
        status_code=response.status_code,
        content_type=response.headers.get("content-type", ""),
        headers=Headers(dict(response.headers)),
        data=response.content,
    )
    _openapi().validate_response(openapi_request, openapi_response)
