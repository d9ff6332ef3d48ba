"""What the provider conformance kit needs from an adapter's test: the adapter, wired to a simulator
of its API that the test controls.

An adapter's author implements :class:`ProviderHarness` once (a few lines over the simulator of
their provider) and the kit checks the whole lifecycle through it.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from pydantic import JsonValue

from ..providers._base import Provider
from ._simulator_faults import Faults
from ._simulator_state import Phase, Pin

__all__ = ["Feature", "Operation", "ProviderHarness", "Received"]

Operation = Literal["create", "status", "content", "cancel"]
"""The provider calls a harness can inject faults into and count."""

Feature = Literal[
    "http",
    "cancel",
    "progress",
    "poll_after",
    "queue_position",
    "empty_result",
    "expiry",
    "image_upload",
    "image_url",
]
"""What a provider's API offers, so the kit checks it (``http``: the adapter speaks HTTP, so the
transport faults apply; ``empty_result``: the API can finish a job with no output)."""


@dataclass(frozen=True, slots=True)
class Received:
    """A create as the simulator received it, read back into the library's terms.

    Images are their bytes when uploaded or inlined, their URL when passed by URL. ``options``
    holds the fields of the provider's input that no common field accounts for (where
    ``provider_options`` land).
    """

    prompt: str
    model: str | None = None
    seconds: int | None = None
    size: str | None = None
    aspect_ratio: str | None = None
    resolution: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    audio: bool | None = None
    image: bytes | str | None = None
    last_frame: bytes | str | None = None
    reference_images: tuple[bytes | str, ...] = ()
    options: Mapping[str, JsonValue] = field(default_factory=dict)


class ProviderHarness(abc.ABC):
    """An adapter wired to a simulator of its API, under the test's control.

    ``secret`` is the credential the adapter was built with: the kit checks that it appears in no
    error, repr, log record or job. ``status_words`` maps every status word of the provider's API
    to the simulated phase it stands for (the kit pins each word and checks the adapter's
    mapping); ``features`` says which parts of the lifecycle the API has.

    Optional: ``call_timeout`` is the bound (seconds) the adapter's calls were built with, short
    so that the kit stays fast (its slow answers outlast it); ``model`` is the model the kit asks
    for (``None``: the capabilities' default); ``provider_options`` is extra input the simulated
    API accepts, which the kit sends and expects back verbatim in :attr:`Received.options`
    (empty: the API takes nothing beyond the mapped fields, and that check is skipped).
    """

    secret: str
    status_words: Mapping[str, Phase]
    features: frozenset[Feature]
    call_timeout: float = 2.0
    model: str | None = None
    provider_options: Mapping[str, JsonValue] = MappingProxyType(
        {"conformance_option": "passed through verbatim"}
    )

    @property
    @abc.abstractmethod
    def provider(self) -> Provider:
        """The adapter under test, pointed at the simulator."""

    @abc.abstractmethod
    def provider_at(self, base_url: str) -> Provider:
        """The same adapter, configured alike but pointed at ``base_url`` (for transport faults)."""

    @abc.abstractmethod
    async def pin(self, external_id: str, pin: Pin) -> None:
        """Force the job into ``pin``'s state; the next status read answers with it."""

    @abc.abstractmethod
    def inject(self, operation: Operation, faults: Faults) -> None:
        """Arm ``faults`` on the simulator's routes for ``operation``."""

    @abc.abstractmethod
    def sent(self, operation: Operation) -> int:
        """How many requests for ``operation`` reached the simulator so far."""

    @abc.abstractmethod
    def received(self, external_id: str) -> Received:
        """The create that started ``external_id``, as the simulator received it."""

    @abc.abstractmethod
    def content(self, external_id: str) -> bytes:
        """The bytes the simulator serves as the finished job's video."""

    async def aclose(self) -> None:
        """Close the adapter (and anything else the harness opened)."""
        await self.provider.aclose()
