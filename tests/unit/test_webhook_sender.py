"""The webhook sender against a real receiver on 127.0.0.1 that verifies every signature."""

from __future__ import annotations

import base64
import logging
import random
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import anyio
import httpx2
import pytest
import trustme
import uvicorn
from standardwebhooks import Webhook

from sora_tasks import PollingPolicy, TaskManager, TaskStatus, WebhookPolicy, WebhookState
from sora_tasks._notify import WebhookSender, check_webhook_secret
from sora_tasks._outbox import WebhookDelivery, backoff, clip_error
from sora_tasks._secrets import REDACTED
from sora_tasks.storage import InMemoryStore
from sora_tasks.testing import FakeBehaviour, FakeProvider, serve_in_thread
from sora_tasks.testing._server import bind
from sora_tasks.testing._task_factories import make_task
from tests.acceptance.test_worker_crashes import eventually
from tests.webhook_receiver import Answer, Received, Receiver

pytestmark = pytest.mark.anyio

SECRET = "whsec_" + base64.b64encode(b"outgoing-webhook-test-key-32-byt").decode()
FAST = PollingPolicy(retry_interval=0.01, idle_wait=0.05, reconcile_delay=0)
QUICK = FakeBehaviour(render_for=0.3, poll_after=0.02, progress_step=25)
HOOKS = WebhookPolicy(allow_private=True, first_retry=0.05, max_retry=0.2, idle_wait=0.02)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver(SECRET)


@pytest.fixture
def hook_url(receiver: Receiver) -> Iterator[str]:
    with serve_in_thread(receiver) as base:
        yield f"{base}/hooks"


def manager(store: InMemoryStore | None = None, **options: object) -> TaskManager:
    options.setdefault("webhook_policy", HOOKS)
    options.setdefault("webhook_secret", SECRET)
    options.setdefault("providers", {"fake": FakeProvider(behaviour=QUICK)})
    return TaskManager(
        store=store or InMemoryStore(),
        policy=FAST,
        **options,  # type: ignore[arg-type]
    )


async def states(manager: TaskManager, task_id: str) -> list[WebhookDelivery]:
    return list(await manager.webhooks(task_id=task_id))


async def test_a_finished_task_is_announced_once_signed_with_the_deployment_secret(
    receiver: Receiver, hook_url: str
) -> None:
    async with manager() as tasks:
        task = await tasks.create("a cat", notify_url=hook_url, metadata={"order": 7})
        await tasks.wait(task.id, timeout=10)

        async def delivered() -> bool:
            found = await states(tasks, task.id)
            return bool(found) and found[0].state is WebhookState.DELIVERED

        await eventually(delivered, timeout=10, what="the delivery recorded as delivered")
    (item,) = receiver.received
    assert item.type == "video.completed"
    assert (item.task_id, item.status, item.progress) == (task.id, "COMPLETED", 100)
    # verified again here, independently of the receiver, with the reference implementation
    payload = Webhook(SECRET).verify(item.body, item.headers)
    assert payload["data"]["metadata"] == {"order": 7}
    assert "providerOptions" not in payload["data"]
    assert item.headers["webhook-signature"].startswith("v1,")
    assert item.headers["content-type"] == "application/json"
    (row,) = await states(tasks, task.id)
    assert (row.id, row.attempts, row.last_error) == (item.id, 1, None)


async def test_a_forged_signature_fails_verification(receiver: Receiver, hook_url: str) -> None:
    other = "whsec_" + base64.b64encode(b"a-different-secret-of-32-bytes!!").decode()
    async with manager(webhook_secret=other) as tasks:
        task = await tasks.create("a cat", notify_url=hook_url)

        async def tried() -> bool:
            found = await states(tasks, task.id)
            return bool(found) and found[0].attempts >= 1 and found[0].last_error is not None

        await eventually(tried, timeout=10, what="a refused attempt")
    assert receiver.unverified >= 1
    assert receiver.received == []
    assert (await states(tasks, task.id))[0].last_error == "HTTP 401"


async def test_failures_are_retried_with_the_same_webhook_id_until_delivered(
    receiver: Receiver, hook_url: str
) -> None:
    receiver.answer = lambda _, seen: Answer(status=503 if seen < 3 else 200)
    async with manager() as tasks:
        task = await tasks.create("a cat", notify_url=hook_url)

        async def delivered() -> bool:
            found = await states(tasks, task.id)
            return bool(found) and found[0].state is WebhookState.DELIVERED

        await eventually(delivered, timeout=15, what="delivery after two failures")
    assert len(receiver.received) == 3
    assert len(set(receiver.ids())) == 1
    timestamps = [int(item.headers["webhook-timestamp"]) for item in receiver.received]
    assert timestamps == sorted(timestamps)
    (row,) = await states(tasks, task.id)
    assert row.attempts == 3
    assert row.last_error is None


async def test_a_delivery_is_given_up_after_its_budget_and_can_be_rearmed(
    receiver: Receiver, hook_url: str
) -> None:
    receiver.answer = lambda _, __: Answer(status=500)
    policy = HOOKS.model_copy(update={"max_attempts": 3})
    async with manager(webhook_policy=policy) as tasks:
        task = await tasks.create("a cat", notify_url=hook_url)

        async def failed() -> bool:
            return bool(await tasks.webhooks(state="failed"))

        await eventually(failed, timeout=15, what="the delivery given up")
        (row,) = await states(tasks, task.id)
        assert (row.state, row.attempts, row.last_error) == (WebhookState.FAILED, 3, "HTTP 500")
        assert len(receiver.received) == 3

        receiver.answer = lambda _, __: Answer(status=200)
        assert await tasks.retry_webhooks() == 1

        async def delivered() -> bool:
            return bool(await tasks.webhooks(state="delivered"))

        await eventually(delivered, timeout=10, what="the re-armed delivery delivered")
    assert len(receiver.received) == 4
    assert len(set(receiver.ids())) == 1


async def test_a_delivery_older_than_its_age_budget_is_given_up_after_one_more_try(
    receiver: Receiver, hook_url: str
) -> None:
    receiver.answer = lambda _, __: Answer(status=500)
    policy = HOOKS.model_copy(update={"max_age": timedelta(microseconds=1)})
    async with manager(webhook_policy=policy) as tasks:
        await tasks.create("a cat", notify_url=hook_url)

        async def failed() -> bool:
            return bool(await tasks.webhooks(state="failed"))

        await eventually(failed, timeout=10, what="the delivery given up")
    assert len(receiver.received) == 1


async def test_redirects_are_not_followed(receiver: Receiver, hook_url: str) -> None:
    elsewhere = hook_url.replace("/hooks", "/elsewhere")
    receiver.answer = lambda _, __: Answer(status=307, headers={"location": elsewhere})
    async with manager() as tasks:
        task = await tasks.create("a cat", notify_url=hook_url)

        async def tried() -> bool:
            found = await states(tasks, task.id)
            return bool(found) and found[0].last_error is not None

        await eventually(tried, timeout=10, what="a failed attempt")
    assert receiver.other_paths == []
    assert (await states(tasks, task.id))[0].last_error == "HTTP 307: redirects are not followed"


async def test_a_name_resolving_inside_fails_the_attempt_without_sending(
    receiver: Receiver, hook_url: str
) -> None:
    # as if the name had pointed outside when the task was created (DNS rebinding)
    inside = hook_url.replace("127.0.0.1", "localhost")
    policy = HOOKS.model_copy(update={"allow_private": False, "max_attempts": 2})
    store = InMemoryStore()
    async with manager(store, webhook_policy=policy) as tasks:
        created = await tasks.create("a cat")
        store._tasks[created.id] = created.model_copy(update={"notify_url": inside})

        async def failed() -> bool:
            return bool(await tasks.webhooks(state="failed"))

        await eventually(failed, timeout=10, what="the delivery refused")
    (row,) = await tasks.webhooks()
    assert row.last_error is not None
    assert "resolves to a loopback address" in row.last_error
    assert receiver.received == []


async def test_a_tasks_events_arrive_in_order_even_when_an_early_one_is_retried(
    receiver: Receiver, hook_url: str
) -> None:
    def answer(item: Received, seen: int) -> Answer:
        return Answer(status=500 if item.type == "video.progress" and seen == 1 else 200)

    receiver.answer = answer
    # long enough a render that the engine sees progress even on a loaded machine
    slow = FakeBehaviour(render_for=2.0, poll_after=0.02, progress_step=25)
    async with manager(providers={"fake": FakeProvider(behaviour=slow)}) as tasks:
        task = await tasks.create("a cat", notify_url=hook_url, notify_progress=True)
        await tasks.wait(task.id, timeout=10)

        async def settled() -> bool:
            found = await states(tasks, task.id)
            return bool(found) and all(row.state is WebhookState.DELIVERED for row in found)

        await eventually(settled, timeout=15, what="every event delivered")
    rows = sorted(await states(tasks, task.id), key=lambda row: row.seq)
    assert len(rows) >= 2
    assert rows[-1].type == "video.completed"
    # every progress event failed once and was retried, yet none was overtaken
    assert all(receiver.count(row.id) == 2 for row in rows[:-1])
    assert [row.id for row in rows] == list(dict.fromkeys(receiver.ids()))
    progress = [item.progress for item in receiver.received if item.type == "video.progress"]
    assert progress == sorted(progress)


async def test_a_manager_without_polling_sends_nothing(receiver: Receiver, hook_url: str) -> None:
    async with manager(poll=False) as tasks:
        task = await tasks.create("a cat", notify_url=hook_url)
        await tasks.cancel(task.id)
        (row,) = await states(tasks, task.id)
    assert row.state is WebhookState.PENDING
    assert receiver.received == []


def test_backoff_doubles_from_the_first_retry_up_to_the_cap_with_jitter() -> None:
    policy = WebhookPolicy(first_retry=5, max_retry=60)
    rng = random.Random(7)
    for attempts, ceiling in [(1, 5), (2, 10), (3, 20), (4, 40), (5, 60), (40, 60)]:
        waits = [backoff(attempts, policy, rng=rng) for _ in range(200)]
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
        assert max(waits) - min(waits) > ceiling / 4  # spread, not one fixed value


async def test_the_secret_stays_out_of_reprs_logs_and_rows(
    receiver: Receiver, hook_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="sora_tasks")
    receiver.answer = lambda _, seen: Answer(status=500 if seen == 1 else 200)
    async with manager() as tasks:
        task = await tasks.create("a cat", notify_url=hook_url)

        async def delivered() -> bool:
            return bool(await tasks.webhooks(state="delivered"))

        await eventually(delivered, timeout=10, what="the delivery")
        assert SECRET not in repr(tasks)
        rows = await tasks.webhooks()
    key = SECRET.removeprefix("whsec_")
    dumped = (
        "".join(row.model_dump_json() for row in rows)
        + (await tasks.get(task.id)).model_dump_json()
    )
    for text in (dumped, caplog.text):
        assert SECRET not in text
        assert key not in text
    assert clip_error(f"echo {SECRET} back") == f"echo {REDACTED} back"
    assert len(clip_error("x" * 5000)) == 500
    assert "webhook" in caplog.text  # the sender did log


async def test_progress_events_are_sent_only_when_asked(receiver: Receiver, hook_url: str) -> None:
    async with manager(notify_url=hook_url, notify_progress=False) as tasks:
        quiet = await tasks.create("a cat")
        chatty = await tasks.create("a dog", notify_progress=True)
        for task in (quiet, chatty):
            await tasks.wait(task.id, timeout=10)

        async def settled() -> bool:
            rows = await tasks.webhooks()
            return len(rows) >= 3 and all(row.state is WebhookState.DELIVERED for row in rows)

        await eventually(settled, timeout=15, what="every event delivered")
    assert [item.type for item in receiver.received if item.task_id == quiet.id] == [
        "video.completed"
    ]
    kinds = [item.type for item in receiver.received if item.task_id == chatty.id]
    assert kinds[-1] == "video.completed"
    assert set(kinds[:-1]) == {"video.progress"}
    assert (await tasks.get(quiet.id)).status is TaskStatus.COMPLETED


async def test_the_checked_address_is_dialled_under_the_urls_own_host_name(
    receiver: Receiver, hook_url: str
) -> None:
    by_name = hook_url.replace("127.0.0.1", "localhost")
    async with manager() as tasks:
        task = await tasks.create("a cat", notify_url=by_name)

        async def delivered() -> bool:
            found = await states(tasks, task.id)
            return bool(found) and found[0].state is WebhookState.DELIVERED

        await eventually(delivered, timeout=10, what="the delivery")
    (item,) = receiver.received
    assert item.headers["host"] == by_name.split("/")[2]


@contextmanager
def serve_tls(app: Receiver, certificate: Path) -> Iterator[str]:
    """Serve ``app`` over TLS on 127.0.0.1 with ``certificate`` (key and chain in one file)."""
    config = uvicorn.Config(
        app,
        http="h11",
        ws="none",
        lifespan="off",
        log_config=None,
        log_level="warning",
        ssl_certfile=str(certificate),
    )
    server = uvicorn.Server(config)
    sock = bind()
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the TLS server did not start"
            time.sleep(0.005)
        yield f"https://localhost:{sock.getsockname()[1]}/hooks"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.mark.parametrize(("named", "delivered"), [("localhost", True), ("other.example", False)])
async def test_tls_is_checked_against_the_urls_host_name_while_dialling_the_checked_address(
    receiver: Receiver, tmp_path: Path, named: str, delivered: bool
) -> None:
    authority = trustme.CA()
    pem = tmp_path / "server.pem"
    authority.issue_cert(named).private_key_and_cert_chain_pem.write_to_path(str(pem))
    trusted = ssl.create_default_context()
    authority.configure_trust(trusted)
    store = InMemoryStore()
    with serve_tls(receiver, pem) as url:
        task = await store.insert(
            make_task(await store.now(), notify_url=url)  # a name, resolved and pinned
        )
        await store.update(task.id, status=TaskStatus.CANCELLED)
        sender = WebhookSender(
            store=store, secret=check_webhook_secret(SECRET), policy=HOOKS, owner="w1"
        )
        async with httpx2.AsyncClient(verify=trusted, trust_env=False) as client:
            (claimed,) = await sender.turn(client)
    (row,) = await store.list_webhooks()
    if delivered:
        assert (row.state, row.last_error) == (WebhookState.DELIVERED, None)
        (item,) = receiver.received
        assert item.id == claimed.id
    else:
        assert row.state is WebhookState.PENDING
        assert row.last_error is not None
        assert "CERTIFICATE_VERIFY_FAILED" in row.last_error or "certificate" in row.last_error
        assert receiver.received == []


async def test_a_slow_receiver_holds_one_place_not_the_others(
    receiver: Receiver, hook_url: str
) -> None:
    slow: set[str] = set()
    receiver.answer = lambda item, _: Answer(delay=3.0 if item.task_id in slow else 0.0)
    async with manager() as tasks:
        first = await tasks.create("a slow one", notify_url=hook_url)
        slow.add(first.id)
        await tasks.cancel(first.id)

        async def hanging() -> bool:
            return any(item.task_id == first.id for item in receiver.received)

        await eventually(hanging, timeout=10, what="the slow delivery under way")
        second = await tasks.create("a quick one", notify_url=hook_url)
        await tasks.cancel(second.id)

        async def quick_delivered() -> bool:
            found = await states(tasks, second.id)
            return bool(found) and found[0].state is WebhookState.DELIVERED

        await eventually(quick_delivered, timeout=2.5, what="the quick delivery")
        (held,) = await states(tasks, first.id)
        assert held.state is WebhookState.PENDING
        assert held.lease_owner is not None


def test_a_lease_shorter_than_a_post_is_refused() -> None:
    with pytest.raises(ValueError, match="lease_seconds"):
        WebhookPolicy(timeout=30, lease_seconds=20)
    # the host lookup counts too
    with pytest.raises(ValueError, match=r"connect_timeout \+ timeout \(35\)"):
        WebhookPolicy(connect_timeout=5, timeout=30, lease_seconds=32)


async def test_a_resolver_that_hangs_fails_the_attempt_within_the_connect_timeout(
    receiver: Receiver, hook_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def hang(url: str, *, allow_private: bool) -> str:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    monkeypatch.setattr("sora_tasks._notify.resolve_target", hang)
    store = InMemoryStore()
    task = await store.insert(make_task(await store.now(), notify_url=hook_url))
    await store.update(task.id, status=TaskStatus.CANCELLED)
    policy = HOOKS.model_copy(update={"connect_timeout": 0.2})
    sender = WebhookSender(
        store=store, secret=check_webhook_secret(SECRET), policy=policy, owner="w1"
    )
    async with httpx2.AsyncClient(trust_env=False) as client:
        with anyio.fail_after(5):
            await sender.turn(client)
    (row,) = await store.list_webhooks()
    assert row.state is WebhookState.PENDING
    assert row.last_error == "the host did not resolve within 0.2 s"
    assert receiver.received == []
