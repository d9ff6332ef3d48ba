"""Provider adapters and the interface they implement."""

from .._retry import Backoff
from ._base import ContentStream, Provider, ProviderCapabilities, ProviderJob, SubmitRequest
from .openai import OpenAIVideosProvider
from .relay import MultipartRelayProvider, RelayConfig

__all__ = [
    "Backoff",
    "ContentStream",
    "MultipartRelayProvider",
    "OpenAIVideosProvider",
    "Provider",
    "ProviderCapabilities",
    "ProviderJob",
    "RelayConfig",
    "SubmitRequest",
]
