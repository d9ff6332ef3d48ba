"""``TaskManager()`` without providers: the ones the environment and the config file
configure, chosen exactly as the command line chooses them (:mod:`sora_tasks._settings`)."""

from __future__ import annotations

from dataclasses import dataclass

from ._build import build_provider
from ._settings import ConfigError, Flags, key_variables_hint, load_settings
from .providers._base import Provider

__all__ = ["Discovered", "providers_from_environment"]


@dataclass(frozen=True)
class Discovered:
    """The providers the environment and the config file configure, as the command line sees
    them: built, with the default one's name and notes for the user (never a secret)."""

    providers: dict[str, Provider]
    default_provider: str
    notes: tuple[str, ...]


def providers_from_environment() -> Discovered:
    """Every provider the command line would use, built; :class:`ConfigError` if there is none.

    Unlike the command line, no fake provider stands in: an empty environment is an error that
    names the variables to set.
    """
    settings = load_settings(Flags())
    if settings.fallback:
        reasons = "".join(f"; {note}" for note in settings.notes)
        raise ConfigError(
            f"no provider configured: pass providers=, or set {key_variables_hint()}, or name "
            f"providers in sora-tasks.toml{reasons}"
        )
    providers = {name: build_provider(name, item) for name, item in settings.providers.items()}
    return Discovered(providers, settings.default_provider, settings.notes)
