"""Where outgoing webhooks may go: the server-side request forgery rules, in one place.

A notify URL comes from a user of the API and the POST goes out from the workers' network, so a
URL naming ``127.0.0.1``, a private address or the cloud's metadata service would turn the
workers into a proxy into that network. :func:`check_notify_url` refuses such URLs when a task is
created (nothing is stored then); :func:`resolve_target` resolves the host again right before
each delivery and refuses when any address it resolves to is refused, so a name that pointed
elsewhere at creation (DNS rebinding) cannot reach the inside either. The sender then connects
to the address it checked, not to whatever a second lookup would return.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Final
from urllib.parse import SplitResult, urlsplit

import anyio

from ._exceptions import InvalidRequestError

__all__ = [
    "MAX_NOTIFY_URL_CHARS",
    "NotifyDefaults",
    "NotifyTargetRefused",
    "address_refusal",
    "check_notify_url",
    "pinned_url",
    "resolve_target",
]

MAX_NOTIFY_URL_CHARS: Final = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA_HOSTS: Final = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data"}
)
_METADATA_ADDRESSES: Final = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_CARRIER_NAT: Final = ipaddress.ip_network("100.64.0.0/10")


@dataclass(frozen=True, slots=True)
class NotifyDefaults:
    """A manager's webhook settings, applied to each request at admission."""

    url: str | None = None
    progress: bool = False
    allow_private: bool = False
    signs: bool = False

    def for_request(self, url: str | None, progress: bool | None) -> tuple[str | None, bool]:
        """The checked ``notify_url`` and ``notify_progress`` of a task asking for these."""
        chosen = url if url is not None else self.url
        if chosen is None:
            return None, False
        checked = check_notify_url(chosen, allow_private=self.allow_private)
        if not self.signs:
            raise _invalid(
                "notify_url needs a webhook_secret on the TaskManager to sign deliveries with"
            )
        return checked, self.progress if progress is None else progress


class NotifyTargetRefused(Exception):
    """A delivery's host resolved to a refused address, or did not resolve at all."""


def address_refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why ``address`` may not receive webhooks (a short phrase), or ``None`` if it may.

    Metadata addresses are always refused; the rest only without ``allow_private``.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    if allow_private:
        return None
    for refused, phrase in (
        (address.is_unspecified, "the unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address in _CARRIER_NAT, "a shared (carrier-grade NAT) address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "a non-global address"),
    ):
        if refused:
            return phrase
    return None


def check_notify_url(url: str, *, allow_private: bool) -> str:
    """Return ``url`` if webhooks may be sent to it; raise :class:`InvalidRequestError` if not.

    Refused: anything but ``http``/``https``, more than :data:`MAX_NOTIFY_URL_CHARS`
    characters, a user name or password in the URL, no host, a metadata host name, and
    (unless ``allow_private``) ``localhost`` names or an IP literal (in any notation the system
    resolver accepts, such as ``0x7f.1``) that is loopback, private, link-local, shared,
    unspecified, multicast or reserved. Host names are resolved at delivery time.
    """
    if len(url) > MAX_NOTIFY_URL_CHARS:
        raise _invalid(
            f"notify_url is {len(url):,} characters long; at most {MAX_NOTIFY_URL_CHARS:,} "
            "are allowed",
            limit=MAX_NOTIFY_URL_CHARS,
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _invalid(f"notify_url is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise _invalid("notify_url must be an http:// or https:// URL", limit="http, https")
    if parts.username is not None or parts.password is not None:
        raise _invalid("notify_url must not carry a user name or password")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise _invalid("notify_url has no host")
    if port == 0:
        raise _invalid("notify_url names port 0")
    reason = _host_refusal(host, allow_private=allow_private)
    if reason is not None:
        raise _invalid(
            f"notify_url points at {reason}; webhooks go only to public addresses unless the "
            "deployment allows private targets (WebhookPolicy(allow_private=True))",
            limit="public addresses",
        )
    return url


async def resolve_target(url: str, *, allow_private: bool) -> str:
    """The address to connect to for ``url``, checked; :class:`NotifyTargetRefused` if none.

    Every address the host resolves to must be allowed: a name with one public and one private
    address is refused, since a second lookup could pick either.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise NotifyTargetRefused(f"the host {host!r} does not resolve ({exc})") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        if not addresses:
            raise NotifyTargetRefused(f"the host {host!r} resolves to no address")
    for address in addresses:
        reason = address_refusal(address, allow_private=allow_private)
        if reason is not None:
            raise NotifyTargetRefused(f"the host {host!r} resolves to {reason} ({address})")
    return str(addresses[0])


def pinned_url(url: str, address: str) -> tuple[str, str]:
    """``url`` with its host replaced by ``address``, and the original ``Host`` header value."""
    parts = urlsplit(url)
    host = f"[{address}]" if ":" in address else address
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    pinned = SplitResult(parts.scheme, netloc, parts.path or "/", parts.query, "").geturl()
    return pinned, parts.netloc


def _host_refusal(host: str, *, allow_private: bool) -> str | None:
    lowered = host.lower()
    if lowered in _METADATA_HOSTS:
        return "a cloud metadata host"
    literal = _literal(lowered)
    if literal is not None:
        return address_refusal(literal, allow_private=allow_private)
    if not allow_private and (lowered == "localhost" or lowered.endswith(".localhost")):
        return "a loopback address"
    return None


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        # the resolver reads "127.1", "0x7f.0.0.1" and "2130706433" as IPv4 addresses too
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _invalid(message: str, *, limit: object = None) -> InvalidRequestError:
    return InvalidRequestError(message, field="notify_url", limit=limit)
