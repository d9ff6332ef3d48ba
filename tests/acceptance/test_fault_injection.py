"""A worker fleet on one PostgreSQL under faults, kills and database restarts (the acceptance run).

Six worker processes share a throwaway PostgreSQL server and a misbehaving simulator (slow answers
longer than the lease, 429s, 500s, dropped answers, truncated downloads, errors that quote the
API key). For ``CHAOS_SECONDS`` a random worker is SIGKILLed every few seconds and replaced, and
the database is restarted (crashed or stopped) several times. Then the chaos stops, the survivors
finish, and the run must end with: no task lost or stuck, no prompt created twice, never two
status requests in flight for one job, every completed video on disk with the checksum the
simulator served, no worker death but the kills, and the canary key nowhere.

Every figure is measured before anything is asserted, so a failing run still prints them all
(``pytest -s`` shows them on success too). ``SORA_TASKS_FAULTS_SEED`` replays a schedule.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from sora_tasks import Task, TaskManager, TaskStatus
from sora_tasks._models import TaskQuery
from sora_tasks.storage import SQLStore
from sora_tasks.testing import Faults, SimulatorApp, create_simulator_app, serve_in_thread
from tests.acceptance.fleet_worker import PROVIDER, fleet_policy, fleet_provider
from tests.pgserver import PostgresServer

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.acceptance,
    pytest.mark.postgres,
    pytest.mark.timeout(300),
]

ROOT = Path(__file__).parents[2]
SEED = int(os.environ.get("SORA_TASKS_FAULTS_SEED", "20261130"))
TASKS = 180
WORKERS = 6
MAX_IN_FLIGHT = 30
LEASE_SECONDS = 3.0
CHAOS_SECONDS = 45.0
KILL_EVERY = (2.0, 4.0)
DB_RESTARTS_AT = (8.0, 18.0, 28.0, 38.0)
DB_DOWN_SECONDS = 1.5
FAULTS_EVERY = 2.0
DRAIN_SECONDS = 75.0
BLOCKED_EVERY = 30
BLOCK_WORD = "forbidden"

# re-armed every FAULTS_EVERY seconds: each burst misbehaves on the next requests of its route
FAULTS = {
    "create": Faults(
        slow_responses=1, delay=1.0, rate_limits=1, retry_after=0.5, server_errors=1,
        dropped_responses=1,
    ),
    "retrieve": Faults(
        slow_responses=2, delay=LEASE_SECONDS + 1.5, rate_limits=2, retry_after=0.5,
        server_errors=2, echoed_keys=1, dropped_responses=1,
    ),
    "content": Faults(server_errors=1, truncated_bodies=2),
}  # fmt: skip
# only the first burst rejects creates with the key in the error: each costs a task
FIRST_CREATE_FAULTS = Faults(echoed_keys=2, dropped_responses=1)


@dataclass
class Figures:
    """What the run measured; ``violations`` lists every invariant that failed and how."""

    tasks: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    failed_by_code: dict[str, int] = field(default_factory=dict)
    kills: int = 0
    workers_started: int = 0
    db_restarts: int = 0
    faults_fired: dict[str, int] = field(default_factory=dict)
    max_polls_in_flight: int = 0
    creates: int = 0
    videos_verified: int = 0
    handled_tracebacks: int = 0
    terminal_when_chaos_stopped: int = 0
    startup_seconds: float = 0.0
    chaos_seconds: float = 0.0
    drain_seconds: float = 0.0
    total_seconds: float = 0.0
    seed: int = SEED
    violations: list[str] = field(default_factory=list)


class Fleet:
    """The worker processes: started, killed, replaced, and finally stopped with SIGTERM."""

    def __init__(self, workdir: Path, url: str, base_url: str, api_key: str) -> None:
        self.workdir = workdir
        self.downloads = workdir / "videos"
        self.downloads.mkdir()
        self.settings = {
            "url": url,
            "base_url": base_url,
            "download_dir": str(self.downloads),
            "lease_seconds": LEASE_SECONDS,
            "max_in_flight": MAX_IN_FLIGHT,
        }
        self.env = {**os.environ, "FLEET_API_KEY": api_key}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.killed: set[str] = set()

    def start(self) -> str:
        name = f"worker-{len(self.processes):02d}"
        config = {
            **self.settings,
            "log": str(self.workdir / f"{name}.log"),
            "ready": str(self.workdir / f"{name}.ready"),
        }
        with (self.workdir / f"{name}.err").open("wb") as err:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "tests.acceptance.fleet_worker", json.dumps(config)],
                cwd=ROOT,
                env=self.env,
                stdout=err,
                stderr=err,
            )
        return name

    def alive(self) -> list[str]:
        return [name for name, p in self.processes.items() if p.poll() is None]

    def running(self) -> list[str]:
        """Live workers past their start-up (the ones worth killing)."""
        return [name for name in self.alive() if (self.workdir / f"{name}.ready").exists()]

    def kill(self, name: str) -> None:
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        # only a process our signal ended counts as killed: one already on its way out died
        if process.wait(timeout=10) == -signal.SIGKILL:
            self.killed.add(name)

    def deaths(self) -> dict[str, str]:
        """Workers that ended (or logged their end) though nobody killed them, and how."""
        logged = {name.removesuffix(".log") for name, log in self.logs() if "WORKER DIED" in log}
        deaths = {}
        for name, process in self.processes.items():
            code = process.poll()
            if name in logged or (name not in self.killed and code is not None):
                deaths[name] = f"exit {code}" + (", logged WORKER DIED" if name in logged else "")
        return deaths

    def terminate(self) -> dict[str, int | None]:
        """SIGTERM every live worker; the exit code of each (None: still running after 15 s).

        A worker still starting up (a replacement started late in the chaos) is given time to
        get ready first: before that, SIGTERM meets Python's default handler, not the worker's.
        """
        live = self.alive()
        deadline = time.monotonic() + 30
        while set(self.running()) != set(self.alive()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for name in live:
            self.processes[name].send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for name in live:
            try:
                codes[name] = self.processes[name].wait(timeout=15)
            except subprocess.TimeoutExpired:
                codes[name] = None
        return codes

    def kill_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)

    def logs(self) -> Iterator[tuple[str, str]]:
        for path in sorted(self.workdir.glob("worker-*.log")) + sorted(
            self.workdir.glob("worker-*.err")
        ):
            yield path.name, path.read_text(errors="replace")


async def read_tasks(url: str) -> list[Task] | None:
    """Every task, or None while the database is away."""
    store = SQLStore(url, create=False)
    try:
        return list((await store.list(TaskQuery(limit=500, order="asc"))).items)
    except Exception:
        return None
    finally:
        await store.close()


async def dump_rows(url: str) -> str:
    """Every row of every table in the public schema, as PostgreSQL's own text."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            tables = (
                await conn.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                )
            ).scalars()
            lines = []
            for table in list(tables):
                rows = await conn.execute(text(f'SELECT t::text FROM "{table}" AS t'))
                lines += [f"{table}: {row}" for row in rows.scalars()]
    finally:
        await engine.dispose()
    return "\n".join(lines)


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float) -> bool:
    """Re-check ``check`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            return False
        await anyio.sleep(0.5)
    return True


def prompt_of(index: int) -> str:
    blocked = index % BLOCKED_EVERY == BLOCKED_EVERY // 2
    return f"fleet task {index:03d}" + (f" ({BLOCK_WORD})" if blocked else "")


def video_saved(task: Task, base: bytes) -> bool:
    """The task's file exists and holds exactly what the simulator served for its job."""
    if task.result is None or task.result.local_path is None or task.external_id is None:
        return False
    path = Path(task.result.local_path)
    if not path.is_file():
        return False
    expected = hashlib.sha256(base + task.external_id.encode()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest() == expected


def failure_explained(task: Task, app: SimulatorApp) -> bool:
    """A FAILED task is allowed only when a fault the run injected accounts for it.

    - ``moderation_blocked`` (the provider's code, possibly carrying more) for a blocked prompt;
    - any code when its create was answered 400 with the key in the error (``echoed_keys``);
    - ``submit_uncertain`` when its create's answer was dropped, or when the provider never
      created a job for it: a 500 on the create (which may have started a job, for all the
      worker can tell) or a worker killed between storing the attempt and sending it.
    """
    assert task.error is not None
    tally = app.state.tally
    if tally.faults[("create", task.prompt, "echoed_keys")]:
        return True
    if task.error.code == "submit_uncertain":
        # a blocked prompt's create, cut off by its bound, is as uncertain as any other
        dropped = tally.faults[("create", task.prompt, "dropped_responses")]
        return bool(dropped) or tally.creates[task.prompt] == 0
    if BLOCK_WORD in task.prompt:
        return task.error.code.startswith("moderation_blocked")
    return False


class Chaos:
    """Kills workers, restarts the database and re-arms faults on a seeded schedule."""

    def __init__(self, fleet: Fleet, server: PostgresServer, app: SimulatorApp) -> None:
        self.fleet = fleet
        self.server = server
        self.restarts = 0
        self.app = app
        self.rng = random.Random(SEED)

    def arm(self, first: bool = False) -> None:
        for route, faults in FAULTS.items():
            self.app.state.faults.set(route, faults)
        if first:
            self.app.state.faults.set("create", FIRST_CREATE_FAULTS)

    def disarm(self) -> None:
        for route in FAULTS:
            self.app.state.faults.set(route, None)

    async def run(self, seconds: float) -> None:
        began = time.monotonic()
        next_kill = began + self.rng.uniform(*KILL_EVERY)
        next_arm = began + FAULTS_EVERY
        restarts = [began + at for at in DB_RESTARTS_AT]
        while (now := time.monotonic()) < began + seconds:
            if now >= next_kill and (running := self.fleet.running()):
                self.fleet.kill(self.rng.choice(running))
                self.fleet.start()
                next_kill = now + self.rng.uniform(*KILL_EVERY)
            if now >= next_arm:
                self.arm()
                next_arm = now + FAULTS_EVERY
            if restarts and now >= restarts[0]:
                restarts.pop(0)
                await anyio.to_thread.run_sync(self._restart_database)
            await anyio.sleep(0.1)

    def _restart_database(self) -> None:
        self.restarts += 1
        if self.restarts % 2 == 1:
            self.server.restart("immediate")  # a crash: recovery replays the WAL
            return
        self.server.stop("fast")
        time.sleep(DB_DOWN_SECONDS)  # the outage itself is the fault: the database stays away
        self.server.start()


async def create_tasks(url: str, base_url: str, api_key: str) -> set[str]:
    store = SQLStore(url)
    await store.migrate()
    config = {"lease_seconds": LEASE_SECONDS, "max_in_flight": MAX_IN_FLIGHT}
    manager = TaskManager(
        providers={PROVIDER: fleet_provider(base_url, api_key)},
        store=store,
        policy=fleet_policy(config),
        poll=False,
    )
    async with manager:
        created = [
            await manager.create(prompt_of(i), model="sora-2", size="1280x720", seconds=4)
            for i in range(TASKS)
        ]
    return {task.id for task in created}


async def test_a_fleet_under_faults_kills_and_database_restarts_loses_nothing(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    began = time.monotonic()
    canary = f"sk-canary-{secrets.token_hex(12)}"
    base = random.Random(SEED).randbytes(256 * 1024)
    app = create_simulator_app(
        render_seconds=3,
        queue_seconds=0.5,
        poll_after_ms=200,
        fail_prompts=[BLOCK_WORD],
        api_key=canary,
        content=base,
        unique_content=True,
        echo_key_in_failures=True,
    )
    figures = Figures()
    database = await postgres_server.create_database("fleet")
    url = database.render_as_string(hide_password=False)
    with serve_in_thread(app) as base_url:
        fleet = Fleet(tmp_path, url, base_url, canary)
        try:
            ids = await create_tasks(url, base_url, canary)
            chaos = Chaos(fleet, postgres_server, app)
            chaos.arm(first=True)
            for _ in range(WORKERS):
                fleet.start()

            async def started() -> bool:
                return len(fleet.running()) == WORKERS

            assert await eventually(started, timeout=60), "the workers did not start in 60 s"
            figures.startup_seconds = time.monotonic() - began
            chaos_began = time.monotonic()
            await chaos.run(CHAOS_SECONDS)
            chaos.disarm()
            figures.chaos_seconds = time.monotonic() - chaos_began
            at_stop = await read_tasks(url) or []
            figures.terminal_when_chaos_stopped = sum(t.is_terminal for t in at_stop)

            async def finished() -> bool:
                tasks = await read_tasks(url)
                return tasks is not None and all(
                    t.is_terminal and (t.status is not TaskStatus.COMPLETED or video_saved(t, base))
                    for t in tasks
                )

            drain_began = time.monotonic()
            drained = await eventually(finished, timeout=DRAIN_SECONDS)
            figures.drain_seconds = time.monotonic() - drain_began
            deaths = fleet.deaths()
            exits = fleet.terminate()
        finally:
            fleet.kill_all()
        tasks = await read_tasks(url) or []
        rows = await dump_rows(url)
        cli = run_cli(tmp_path, url, canary)

    figures.kills = len(fleet.killed)
    figures.workers_started = len(fleet.processes)
    figures.db_restarts = chaos.restarts
    fired: Counter[str] = Counter()
    for (route, _, kind), count in app.state.tally.faults.items():
        fired[f"{route}:{kind}"] += count
    figures.faults_fired = dict(sorted(fired.items()))
    figures.total_seconds = time.monotonic() - began
    measure(figures, app, tasks, ids, base)
    check_fleet(figures, fleet, deaths, exits, drained)
    check_canary(figures, canary, fleet, rows, tasks, cli)
    # the figures are this test's product: shown by `pytest -s`, and with any failure
    print(json.dumps(figures.__dict__, indent=2))  # noqa: T201
    assert not figures.violations, "\n".join(figures.violations)


def measure(
    figures: Figures, app: SimulatorApp, tasks: list[Task], ids: set[str], base: bytes
) -> None:
    """Tasks and videos against what the simulator saw."""
    tally = app.state.tally
    figures.tasks = len(tasks)
    figures.by_status = dict(Counter(t.status.value for t in tasks))
    failed = [t for t in tasks if t.status is TaskStatus.FAILED]
    figures.failed_by_code = dict(Counter(t.error.code if t.error else "-" for t in failed))
    figures.creates = app.state.creates
    figures.max_polls_in_flight = tally.max_in_flight("retrieve")
    found = {t.id for t in tasks}
    violations = figures.violations
    if lost := ids - found:
        violations.append(f"{len(lost)} tasks lost (not in the database): {sorted(lost)[:5]}")
    if stuck := [t for t in tasks if not t.is_terminal]:
        states = Counter(t.status.value for t in stuck)
        violations.append(f"{len(stuck)} tasks stuck, not terminal: {dict(states)}")
    if unexplained := [t for t in failed if not failure_explained(t, app)]:
        codes = Counter(t.error.code if t.error else "-" for t in unexplained)
        some = [(t.id, t.prompt, tally.creates[t.prompt]) for t in unexplained[:3]]
        violations.append(
            f"{len(unexplained)} FAILED without a fault to explain it: {dict(codes)}; "
            f"(task, prompt, jobs created) e.g. {some}"
        )
    if duplicates := tally.duplicate_creates():
        violations.append(f"{len(duplicates)} prompts created more than once: {duplicates}")
    if figures.max_polls_in_flight > 1:
        doubled = [k for k, n in tally.peak_in_flight.items() if k[0] == "retrieve" and n > 1]
        violations.append(
            f"{len(doubled)} jobs had {figures.max_polls_in_flight} status requests in flight "
            "at once (at most 1 allowed)"
        )
    completed = [t for t in tasks if t.status is TaskStatus.COMPLETED]
    verified = [t for t in completed if video_saved(t, base)]
    figures.videos_verified = len(verified)
    if missing := len(completed) - len(verified):
        no_path = sum(1 for t in completed if not (t.result and t.result.local_path))
        violations.append(
            f"{missing} of {len(completed)} COMPLETED tasks lack their video on disk with the "
            f"served checksum ({no_path} have no local_path at all)"
        )


def check_fleet(
    figures: Figures,
    fleet: Fleet,
    deaths: dict[str, str],
    exits: dict[str, int | None],
    drained: bool,
) -> None:
    """No worker may end but by the kills, and every survivor stops cleanly on SIGTERM."""
    violations = figures.violations
    if not drained:
        violations.append(f"the survivors did not finish within {DRAIN_SECONDS:g} s")
    if deaths:
        violations.append(f"{len(deaths)} workers died, not by SIGKILL: {deaths}")
    if unclean := {name: code for name, code in exits.items() if code != 0}:
        violations.append(f"workers that did not exit 0 on SIGTERM: {unclean}")
    figures.handled_tracebacks = sum(log.count("Traceback") for _, log in fleet.logs())


def check_canary(
    figures: Figures,
    canary: str,
    fleet: Fleet,
    rows: str,
    tasks: list[Task],
    cli: subprocess.CompletedProcess[str],
) -> None:
    """The key the workers sent must appear in no log, row, task error or command output."""
    places = [name for name, log in fleet.logs() if canary in log]
    lines = sum(log.count(canary) for _, log in fleet.logs())
    if places:
        figures.violations.append(
            f"the canary key is in {lines} log lines of {len(places)} files: {places[:4]}"
        )
    if (in_rows := rows.count(canary)) > 0:
        figures.violations.append(f"the canary key is in {in_rows} places of the database rows")
    leaky = [t for t in tasks if t.error and canary in f"{t.error.code} {t.error.message}"]
    if leaky:
        figures.violations.append(f"the canary key is in {len(leaky)} tasks' TaskError")
    if cli.returncode != 0:
        figures.violations.append(f"`sora-tasks list --json` failed ({cli.returncode})")
    if canary in cli.stdout + cli.stderr:
        figures.violations.append("the canary key is in the output of `sora-tasks list --json`")


def run_cli(workdir: Path, url: str, canary: str) -> subprocess.CompletedProcess[str]:
    """``sora-tasks list --json`` on the fleet's database, with the key in its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SORA_TASKS_"))}
    env.update(
        SORA_TASKS_DATABASE_URL=url,
        OPENAI_API_KEY=canary,
        # OpenAI's own endpoint is retired: a key alone is refused, so name a server
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",
        XDG_DATA_HOME=str(workdir / "data"),
        XDG_CONFIG_HOME=str(workdir / "config"),
    )
    done = subprocess.run(
        [sys.executable, "-m", "sora_tasks", "list", "--json", "--limit", "500"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done
