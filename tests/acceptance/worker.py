"""A worker process for the acceptance tests: ``python -m tests.acceptance.worker CONFIG_JSON``.

It polls (and optionally first creates) tasks in a SQLite file (or the database at ``url``)
against a simulator over a real socket, until SIGTERM. With ``hang_after_create`` it freezes
right after the provider answered a create and before anything is written, so a test can kill
it in exactly that window. With
``notify_url`` the tasks it creates notify that URL (with progress events when
``notify_progress``), and it delivers webhooks signed with ``HOOK_SECRET`` from the environment.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import anyio

from sora_tasks import PollingPolicy, PollSchedule, TaskManager, WebhookPolicy
from sora_tasks.providers import OpenAIVideosProvider, ProviderJob, SubmitRequest
from sora_tasks.providers.openai import DEFAULT_OPENAI_CAPABILITIES
from sora_tasks.storage import SQLStore

FAST = PollSchedule(first_interval=0.2, dense_window=0.5, dense_interval=0.2, max_interval=1.0)


class FreezingProvider(OpenAIVideosProvider):
    """Answers the first create to nobody: the marker file gets the job id, then it hangs."""

    def __init__(self, marker: Path, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self._marker = marker

    async def submit(self, request: SubmitRequest) -> ProviderJob:
        job = await super().submit(request)
        self._marker.write_text(job.external_id)
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


async def main(config: dict[str, object]) -> None:
    options: dict[str, object] = {
        "api_key": "sk-acceptance",
        "base_url": f"{config['base_url']}/v1",
        "capabilities": DEFAULT_OPENAI_CAPABILITIES.model_copy(update={"min_poll_interval": 0.1}),
    }
    marker = config.get("hang_after_create")
    provider = (
        FreezingProvider(Path(str(marker)), **options)
        if marker
        else OpenAIVideosProvider(**options)  # type: ignore[arg-type]
    )
    policy = PollingPolicy(
        schedule=FAST,
        lease_seconds=float(str(config.get("lease_seconds", 30))),
        shutdown_grace=float(str(config.get("shutdown_grace", 5))),
        idle_wait=0.1,
        retry_interval=0.2,
    )
    hooks: dict[str, object] = {}
    if "HOOK_SECRET" in os.environ:
        lease = float(str(config.get("webhook_lease", 10)))
        hooks = {
            "webhook_secret": os.environ["HOOK_SECRET"],
            "webhook_policy": WebhookPolicy(
                allow_private=True,
                first_retry=0.5,
                max_retry=1.0,
                lease_seconds=lease,
                connect_timeout=0.1 * lease,
                timeout=0.8 * lease,
                idle_wait=0.05,
            ),
        }
    manager = TaskManager(
        providers={"sim": provider},
        store=SQLStore(str(config.get("url") or f"sqlite+aiosqlite:///{config['db']}")),
        policy=policy,
        download_dir=config.get("download_dir"),  # type: ignore[arg-type]
        archive=config.get("archive"),  # type: ignore[arg-type]
        **hooks,  # type: ignore[arg-type]
    )
    async with manager:
        for index in range(int(str(config.get("create", 0)))):
            await manager.create(
                f"acceptance task {index}",
                model="sora-2",
                size="1280x720",
                seconds=4,
                notify_url=config.get("notify_url"),  # type: ignore[arg-type]
                notify_progress=bool(config.get("notify_progress")),
            )
        Path(str(config["ready"])).write_text("ready")
        await manager.run_worker()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    anyio.run(main, json.loads(sys.argv[1]))
