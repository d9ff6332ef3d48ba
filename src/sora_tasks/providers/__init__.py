"""Provider adapters and the interface they implement."""

from ._base import ContentStream, Provider, ProviderCapabilities, ProviderJob, SubmitRequest

__all__ = [
    "ContentStream",
    "Provider",
    "ProviderCapabilities",
    "ProviderJob",
    "SubmitRequest",
]
