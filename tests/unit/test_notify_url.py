"""Which notify URLs are refused, when, and with what message (the SSRF rules)."""

from __future__ import annotations

import base64

import pytest

from sora_tasks import InvalidRequestError, TaskManager, WebhookPolicy
from sora_tasks._notify_url import (
    NotifyTargetRefused,
    check_notify_url,
    pinned_url,
    resolve_target,
)
from sora_tasks.storage import InMemoryStore
from sora_tasks.testing import FakeProvider

pytestmark = pytest.mark.anyio

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()

REFUSED = [
    ("ftp://hooks.example.com/x", "http:// or https://"),
    ("file:///etc/passwd", "http:// or https://"),
    ("javascript:alert(1)", "http:// or https://"),
    ("https://" + "a" * 2040 + ".com/", "at most 2,048"),
    ("https://user:pw@hooks.example.com/", "user name or password"),
    ("https://token@hooks.example.com/", "user name or password"),
    ("https:///path-only", "no host"),
    ("http://127.0.0.1/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://0x7f.0.0.1/", "loopback"),
    ("http://2130706433/", "loopback"),
    ("http://[::1]:8080/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://localhost:9000/", "loopback"),
    ("http://api.localhost/", "loopback"),
    ("http://10.1.2.3/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://192.168.1.10/", "private"),
    ("http://[fd12:3456::1]/", "private"),
    ("http://100.64.0.1/", "shared"),
    ("http://169.254.10.10/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://[fd00:ec2::254]/", "metadata"),
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
    ("http://METADATA.google.internal./", "metadata"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://hooks.example.com:99999/", "not a valid URL"),
]

ALLOWED = [
    "https://hooks.example.com/sora?token=abc",
    "http://93.184.216.34:8080/hook",
    "https://[2606:4700::1111]/hook",
    "https://hooks.example.com./trailing-dot",
]


@pytest.mark.parametrize(("url", "said"), REFUSED)
def test_bad_notify_urls_are_refused_naming_the_field_and_the_reason(url: str, said: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        check_notify_url(url, allow_private=False)
    assert caught.value.field == "notify_url"
    assert said in str(caught.value)


@pytest.mark.parametrize("url", ALLOWED)
def test_public_urls_pass(url: str) -> None:
    assert check_notify_url(url, allow_private=False) == url


def test_the_length_error_names_the_limit() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        check_notify_url("https://hooks.example.com/" + "a" * 2048, allow_private=False)
    assert caught.value.limit == 2048


def test_allowing_private_targets_still_refuses_metadata_addresses() -> None:
    assert check_notify_url("http://127.0.0.1:9/x", allow_private=True)
    assert check_notify_url("http://localhost:9/x", allow_private=True)
    assert check_notify_url("http://10.0.0.5/x", allow_private=True)
    for url in ("http://169.254.169.254/", "http://[fd00:ec2::254]/", "http://metadata/"):
        with pytest.raises(InvalidRequestError, match="metadata"):
            check_notify_url(url, allow_private=True)


async def test_a_bad_notify_url_stores_nothing() -> None:
    store = InMemoryStore()
    async with TaskManager(
        providers=FakeProvider(), store=store, webhook_secret=SECRET, poll=False
    ) as manager:
        for url, _ in REFUSED[:12]:
            with pytest.raises(InvalidRequestError) as caught:
                await manager.create("a cat", notify_url=url)
            assert caught.value.field == "notify_url"
        assert (await manager.list()).items == []


async def test_a_notify_url_without_a_secret_is_refused() -> None:
    async with TaskManager(providers=FakeProvider(), poll=False) as manager:
        with pytest.raises(InvalidRequestError, match="webhook_secret") as caught:
            await manager.create("a cat", notify_url="https://hooks.example.com/")
        assert caught.value.field == "notify_url"
        assert (await manager.list()).items == []
    with pytest.raises(ValueError, match="webhook_secret"):
        TaskManager(providers=FakeProvider(), notify_url="https://hooks.example.com/")


def test_the_managers_default_url_is_checked_too() -> None:
    with pytest.raises(InvalidRequestError, match="loopback"):
        TaskManager(providers=FakeProvider(), webhook_secret=SECRET, notify_url="http://127.0.0.1/")
    TaskManager(
        providers=FakeProvider(),
        webhook_secret=SECRET,
        notify_url="http://127.0.0.1/",
        webhook_policy=WebhookPolicy(allow_private=True),
    )


@pytest.mark.parametrize(
    ("secret", "said"),
    [
        ("k" * 40, "must start with 'whsec_'"),
        ("whsec_not*base64!", "must be base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "holds 5 bytes"),
    ],
)
def test_a_secret_that_is_not_a_standard_webhooks_secret_is_refused_without_echoing_it(
    secret: str, said: str
) -> None:
    with pytest.raises(ValueError, match=said) as caught:
        TaskManager(providers=FakeProvider(), webhook_secret=secret)
    assert secret not in str(caught.value)


async def test_delivery_time_resolution_refuses_names_that_point_inside() -> None:
    with pytest.raises(NotifyTargetRefused, match="loopback"):
        await resolve_target("http://localhost:8080/x", allow_private=False)
    with pytest.raises(NotifyTargetRefused, match="does not resolve"):
        await resolve_target("http://no-such-host.invalid/x", allow_private=False)
    assert await resolve_target("http://localhost:8080/x", allow_private=True) in (
        "127.0.0.1",
        "::1",
    )
    assert await resolve_target("http://93.184.216.34/x", allow_private=False) == "93.184.216.34"


def test_the_pinned_url_keeps_path_query_and_port_and_names_the_host() -> None:
    assert pinned_url("https://hooks.example.com:8443/a/b?c=d", "93.184.216.34") == (
        "https://93.184.216.34:8443/a/b?c=d",
        "hooks.example.com:8443",
    )
    assert pinned_url("http://hooks.example.com", "2606:4700::1111") == (
        "http://[2606:4700::1111]/",
        "hooks.example.com",
    )
