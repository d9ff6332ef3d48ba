"""The simulator's pure parts: settings checks, fault budgets, the multipart parser, content."""

from __future__ import annotations

import re
import socket

import httpx2
import pytest

from sora_tasks.testing import create_simulator_app
from sora_tasks.testing._server import bind
from sora_tasks.testing._simulator_config import Content, resolve_curve, synthetic_block
from sora_tasks.testing._simulator_faults import FaultPlan, Faults
from sora_tasks.testing._simulator_multipart import parse_form


@pytest.mark.parametrize(
    "kwargs",
    [
        {"render_seconds": -1},
        {"queue_seconds": float("nan")},
        {"asset_ttl_seconds": float("inf")},
        {"relay_path": "relay"},
        {"relay_path": "/relay/"},
        {"progress_curve": "bouncy"},
        {"content": b"x", "content_size": 1},
        {"content_size": -1},
        {"faults": {"nowhere": Faults()}},
    ],
)
def test_bad_simulator_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        create_simulator_app(**kwargs)  # type: ignore[arg-type]


def test_negative_fault_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="rate_limits"):
        Faults(rate_limits=-1)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"rejection_status": 500}, "rejection_status"),
        ({"rejection_status": 429}, "rejection_status"),
        ({"server_error_status": 404}, "server_error_status"),
    ],
)
def test_fault_statuses_outside_their_class_are_refused(kwargs: dict[str, int], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        Faults(**kwargs)


def test_fault_budgets_run_out_per_kind_and_route() -> None:
    plan = FaultPlan({"create": Faults(server_errors=2), "*": Faults(rate_limits=1)})
    fired = [plan.take("create", "server_errors") is not None for _ in range(3)]
    assert fired == [True, True, False]
    assert plan.take("create", "rate_limits") is None, "a route's own entry hides the wildcard"
    assert [plan.take("list", "rate_limits") is not None for _ in range(2)] == [True, False]
    assert plan.take("retrieve", "rate_limits") is None, "the wildcard budget is shared"
    assert plan.fired == {("create", "server_errors"): 2, ("*", "rate_limits"): 1}


@pytest.mark.parametrize("name", ["linear", "ease_in", "ease_out", "ease_in_out"])
def test_named_curves_run_from_zero_to_one(name: str) -> None:
    curve = resolve_curve(name)  # type: ignore[arg-type]
    assert (curve(0.0), curve(1.0)) == (0.0, 1.0)
    assert 0.0 < curve(0.5) < 1.0


def test_synthetic_content_is_generated_in_bounded_chunks() -> None:
    size = 2 * len(synthetic_block()) + 10
    chunks = list(Content.synthetic(size).chunks())
    assert [len(c) for c in chunks] == [len(synthetic_block())] * 2 + [10]
    assert chunks[-1] == synthetic_block()[:10]


def test_given_content_is_served_as_is() -> None:
    data = bytes(range(256)) * 5000
    assert b"".join(Content(data, len(data)).chunks()) == data


def _encoded(**kwargs: object) -> tuple[bytes, str]:
    request = httpx2.Request("POST", "http://sim/", **kwargs)  # type: ignore[arg-type]
    return request.read(), request.headers["content-type"]


def test_parse_form_keeps_binary_parts_exact() -> None:
    tricky = b"\r\n--boundary-lookalike\r\n\r\n" + bytes(range(256))
    body, content_type = _encoded(
        data={"prompt": "caf\u00e9 \u732b", "seconds": "4"},
        files={"input_reference": ("r\u00e9f.png", tricky, "image/png"), "empty": (None, b"")},
    )
    form = parse_form(body, content_type)
    assert form.fields == {"prompt": "caf\u00e9 \u732b", "seconds": "4", "empty": ""}
    upload = form.files["input_reference"]
    assert (upload.filename, upload.content_type, upload.data) == (
        "r\u00e9f.png",
        "image/png",
        tricky,
    )


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"", "multipart/form-data", "boundary"),
        (b"no delimiter here", "multipart/form-data; boundary=b", "no parts"),
        (
            b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nx",
            "multipart/form-data; boundary=b",
            "final",
        ),
        (
            b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--b--",
            "multipart/form-data; boundary=b",
            None,
        ),
        (b"--b\r\nno-blank-line\r\n--b--", "multipart/form-data; boundary=b", "headers"),
        (
            b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--",
            "multipart/form-data; boundary=b",
            "name",
        ),
        (
            b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\n\xff\r\n--b--",
            "multipart/form-data; boundary=b",
            "utf-8",
        ),
    ],
)
def test_parse_form_refuses_malformed_bodies(
    body: bytes, content_type: str, message: str | None
) -> None:
    if message is None:
        assert parse_form(body, content_type).fields == {"a": "x"}
        return
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_form(body, content_type)


def test_bound_sockets_say_tcp_so_asyncio_turns_nagle_off() -> None:
    # asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP; with proto 0 every
    # small answer waited ~40 ms behind its headers for a delayed ACK
    with bind() as sock:
        assert sock.proto == socket.IPPROTO_TCP
