"""Task stores and the protocol they implement."""

from ._base import TaskStore
from .memory import InMemoryStore

__all__ = ["InMemoryStore", "TaskStore"]
