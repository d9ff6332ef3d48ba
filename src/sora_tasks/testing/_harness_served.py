"""What every harness over one shape of the served simulator shares, and how they read images,
texts, numbers and switches back out of the bodies the simulator received."""

from __future__ import annotations

import base64
from collections.abc import Mapping

from ..providers._base import Provider
from ._harness import Operation, ProviderHarness
from ._simulator import SimulatorApp
from ._simulator_faults import Faults
from ._simulator_state import Pin

__all__ = ["ServedHarness", "wire_flag", "wire_image", "wire_number", "wire_text"]


class ServedHarness(ProviderHarness):
    """A harness whose simulator ``app`` names the routes of each operation in ``routes``.

    Subclasses set ``app``, ``routes`` and ``_provider``; :meth:`job_id` turns the adapter's
    external id into the simulator's job id where the two differ.
    """

    app: SimulatorApp
    routes: Mapping[Operation, tuple[str, ...]]
    _provider: Provider

    @property
    def provider(self) -> Provider:
        """The adapter under test, pointed at the served simulator."""
        return self._provider

    def job_id(self, external_id: str) -> str:
        """The simulator's id of the job the adapter calls ``external_id``."""
        return external_id

    async def pin(self, external_id: str, pin: Pin) -> None:
        """See :meth:`ProviderHarness.pin`."""
        self.app.state.pin(self.job_id(external_id), pin)

    def inject(self, operation: Operation, faults: Faults) -> None:
        """See :meth:`ProviderHarness.inject`."""
        for route in self.routes[operation]:
            self.app.state.faults.set(route, faults)

    def sent(self, operation: Operation) -> int:
        """See :meth:`ProviderHarness.sent`."""
        return sum(self.app.state.hits[route] for route in self.routes[operation])

    def content(self, external_id: str) -> bytes:
        """The bytes the simulator serves as the job's video."""
        config = self.app.config
        body = b"".join(config.content.chunks())
        return body + self.job_id(external_id).encode() if config.unique_content else body


def wire_image(value: object) -> bytes | str | None:
    """An image field as sent: a data URI's bytes, or the URL itself."""
    if not isinstance(value, str):
        return None
    if value.startswith("data:") and ";base64," in value:
        return base64.b64decode(value.split(";base64,", 1)[1])
    return value


def wire_text(value: object) -> str | None:
    """A text field as sent, if it is text."""
    return value if isinstance(value, str) else None


def wire_number(value: object) -> int | None:
    """A whole-number field as sent, if it is one."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def wire_flag(value: object) -> bool | None:
    """A switch as sent, if it is one."""
    return value if isinstance(value, bool) else None
