"""An adapter's credential: the one given, else the first of its conventional variables."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import SecretStr

from .._exceptions import InvalidRequestError

__all__ = ["api_key"]


def api_key(
    given: str | SecretStr | None,
    *variables: str,
    what: str = "API key",
    environ: Mapping[str, str] | None = None,
) -> SecretStr:
    """``given``, else the first of ``variables`` set in the environment, as a secret.

    Neither is an :class:`InvalidRequestError` naming the variables (never a value).
    """
    env = os.environ if environ is None else environ
    key: str | SecretStr | None = given
    if key is None:
        key = next((env[name] for name in variables if env.get(name)), None)
    if isinstance(key, SecretStr):
        key = key if key.get_secret_value() else None
    if not key:
        names = " (or ".join(variables) + ")" * (len(variables) - 1)
        raise InvalidRequestError(f"no {what}: pass api_key= or set {names}", field="api_key")
    return key if isinstance(key, SecretStr) else SecretStr(key)
