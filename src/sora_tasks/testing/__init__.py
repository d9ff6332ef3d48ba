"""Test doubles shipped for everyone's tests: a scriptable fake provider and a provider simulator.

``FakeProvider`` runs in-process with no network. ``create_simulator_app`` returns an ASGI app
that speaks the OpenAI Videos, relay and Replicate wire formats, with fault injection
(``Faults``), to serve on a port (``serve_in_thread`` in a test, ``python -m sora_tasks.testing``
from a shell). ``ReplicateSimulatorHarness`` wires ``ReplicateProvider`` to it for the provider
conformance kit.
"""

from ._fake import FakeBehaviour, FakeProvider, sample_video
from ._harness_replicate import ReplicateSimulatorHarness
from ._server import serve_in_thread
from ._simulator import SimulatorApp, create_simulator_app
from ._simulator_faults import Faults
from ._simulator_replicate import REPLICATE_WEBHOOK_SECRET

__all__ = [
    "REPLICATE_WEBHOOK_SECRET",
    "FakeBehaviour",
    "FakeProvider",
    "Faults",
    "ReplicateSimulatorHarness",
    "SimulatorApp",
    "create_simulator_app",
    "sample_video",
    "serve_in_thread",
]
