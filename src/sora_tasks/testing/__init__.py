"""Test doubles shipped for everyone's tests: a scriptable fake provider and a provider simulator.

``FakeProvider`` runs in-process with no network. ``create_simulator_app`` returns an ASGI app
that speaks the OpenAI Videos, relay, Replicate, fal, Runway and Veo wire formats, with fault
injection
(``Faults``), to serve on a port (``serve_in_thread`` in a test, ``python -m sora_tasks.testing``
from a shell).

The provider conformance kit (:mod:`sora_tasks.testing.conformance`) drives an adapter through a
:class:`ProviderHarness`; :class:`OpenAISimulatorHarness`, :class:`RelaySimulatorHarness`,
:class:`ReplicateSimulatorHarness`, :class:`FalSimulatorHarness`,
:class:`RunwaySimulatorHarness` and :class:`VeoSimulatorHarness` are ready-made ones over the
simulator. The store contract suite is :mod:`sora_tasks.testing.store_contract`. Both need
pytest; this package does not.
"""

from ._fake import FakeBehaviour, FakeProvider, sample_video
from ._harness import Feature, Operation, ProviderHarness, Received
from ._harness_fal import FalSimulatorHarness
from ._harness_replicate import ReplicateSimulatorHarness
from ._harness_runway import RunwaySimulatorHarness
from ._harness_veo import VeoSimulatorHarness
from ._server import serve_in_thread
from ._simulator import SimulatorApp, create_simulator_app
from ._simulator_faults import Faults
from ._simulator_harness import AdapterFactory, OpenAISimulatorHarness, RelaySimulatorHarness
from ._simulator_replicate import REPLICATE_WEBHOOK_SECRET
from ._simulator_state import Phase, Pin

__all__ = [
    "REPLICATE_WEBHOOK_SECRET",
    "AdapterFactory",
    "FakeBehaviour",
    "FakeProvider",
    "FalSimulatorHarness",
    "Faults",
    "Feature",
    "OpenAISimulatorHarness",
    "Operation",
    "Phase",
    "Pin",
    "ProviderHarness",
    "Received",
    "RelaySimulatorHarness",
    "ReplicateSimulatorHarness",
    "RunwaySimulatorHarness",
    "SimulatorApp",
    "VeoSimulatorHarness",
    "create_simulator_app",
    "sample_video",
    "serve_in_thread",
]
