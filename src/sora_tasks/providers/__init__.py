"""Provider adapters and the interface they implement."""

from .._retry import Backoff
from ._base import ContentStream, Provider, ProviderCapabilities, ProviderJob, SubmitRequest
from ._replicate_models import ReplicateModel
from ._runway_models import RUNWAY_MODELS, RunwayModel
from ._veo_models import VeoModel
from .fal import FalProvider
from .openai import OpenAIVideosProvider
from .relay import MultipartRelayProvider, RelayConfig
from .replicate import ReplicateProvider
from .runway import RunwayProvider, RunwayRequestError
from .veo import VeoProvider

__all__ = [
    "Backoff",
    "ContentStream",
    "FalProvider",
    "MultipartRelayProvider",
    "OpenAIVideosProvider",
    "Provider",
    "ProviderCapabilities",
    "ProviderJob",
    "RelayConfig",
    "ReplicateModel",
    "RUNWAY_MODELS",
    "ReplicateProvider",
    "RunwayModel",
    "RunwayProvider",
    "RunwayRequestError",
    "SubmitRequest",
    "VeoModel",
    "VeoProvider",
]
