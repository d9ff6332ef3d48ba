"""Test doubles shipped for everyone's tests: a scriptable fake provider and a provider simulator.

``FakeProvider`` runs in-process with no network. ``create_simulator_app`` returns an ASGI app
that speaks the OpenAI Videos and relay wire formats, with fault injection, to serve on a port.
"""

from typing import Any

from ._fake import FakeBehaviour, FakeProvider, sample_video

__all__ = ["FakeBehaviour", "FakeProvider", "create_simulator_app", "sample_video"]


def __getattr__(name: str) -> Any:
    if name == "create_simulator_app":
        from ._simulator import create_simulator_app

        return create_simulator_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
