"""Helpers for tests against the simulator: a clock tests move by hand, and contract checks."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import httpx2

from tests.contract.test_openai_contract import as_openapi_request, as_openapi_response, openapi

# the contract's server; the simulator's own address would not match its paths
_SPEC_ORIGIN = "https://api.openai.com"


class ManualClock:
    """A monotonic clock that only moves when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def check_contract(response: httpx2.Response) -> None:
    """Fail unless ``response`` from the simulator's ``/v1/videos`` routes matches the contract."""
    response.request.read()  # a multipart body was streamed; the converter wants it whole
    # the converters read only what httpx and httpx2 objects share (url, method, headers, content)
    request = as_openapi_request(cast(Any, response.request))
    request = dataclasses.replace(request, host_url=_SPEC_ORIGIN)
    openapi().validate_response(request, as_openapi_response(cast(Any, response)))
