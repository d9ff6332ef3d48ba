"""Where ``save_stream`` may write: through symlinks, never over what is not a regular file."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from sora_tasks import PollingPolicy, TaskManager
from sora_tasks._download import check_target, save_stream
from sora_tasks._exceptions import DownloadError
from sora_tasks.providers._base import ContentStream
from sora_tasks.testing import FakeBehaviour, FakeProvider

pytestmark = pytest.mark.anyio

VIDEO = b"\x00\x00\x00\x18ftypmp42" * 1000


class BytesStream(ContentStream):
    """The body in a few chunks; ``during`` runs after the first (to change the world mid-way)."""

    def __init__(self, data: bytes = VIDEO, during: Callable[[], None] | None = None) -> None:
        self.content_length = len(data)
        self.data = data
        self.during = during
        self.read = False

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        self.read = True
        half = len(self.data) // 2
        yield self.data[:half]
        if self.during is not None:
            self.during()
        yield self.data[half:]


async def save(target: Path, stream: BytesStream | None = None) -> Path:
    saved = await save_stream(stream or BytesStream(), target, max_bytes=1 << 20)
    return saved.path


async def refused(target: Path, match: str) -> None:
    stream = BytesStream()
    with pytest.raises(DownloadError, match=match):
        await save(target, stream)
    assert not stream.read, "the body was read before the target was checked"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


async def test_a_symlink_is_written_through_and_stays_a_link(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    real = tmp_path / "store" / "real.mp4"
    real.write_bytes(b"old")
    link = tmp_path / "link.mp4"
    link.symlink_to(real)
    written = await save(link)
    assert link.is_symlink() and link.readlink() == real
    assert real.read_bytes() == VIDEO
    assert written == real
    assert leftovers(tmp_path) == leftovers(tmp_path / "store") == []


async def test_a_relative_symlink_chain_resolves_to_the_final_file(tmp_path: Path) -> None:
    real = tmp_path / "real.mp4"
    real.write_bytes(b"old")
    (tmp_path / "middle.mp4").symlink_to("real.mp4")
    (tmp_path / "link.mp4").symlink_to("middle.mp4")
    assert await save(tmp_path / "link.mp4") == real
    assert real.read_bytes() == VIDEO
    assert (tmp_path / "link.mp4").is_symlink() and (tmp_path / "middle.mp4").is_symlink()


async def test_a_dangling_symlink_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "link.mp4"
    link.symlink_to(tmp_path / "nowhere.mp4")
    await refused(link, r"link\.mp4 is a symbolic link to .*nowhere\.mp4, which does not exist")
    assert link.is_symlink()
    assert not (tmp_path / "nowhere.mp4").exists()


async def test_a_symlink_loop_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.mp4").symlink_to("b.mp4")
    (tmp_path / "b.mp4").symlink_to("a.mp4")
    await refused(tmp_path / "a.mp4", r"a\.mp4 is a symbolic link that cannot be resolved")


async def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out.mp4").mkdir()
    await refused(tmp_path / "out.mp4", r"out\.mp4 is a directory, not a regular file")
    assert (tmp_path / "out.mp4").is_dir()


async def test_a_fifo_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.mp4")
    await refused(tmp_path / "pipe.mp4", r"pipe\.mp4 is a FIFO \(named pipe\), not a regular")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe.mp4").st_mode)


async def test_a_socket_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # AF_UNIX paths are limited to about 100 bytes: tmp_path can be longer
    monkeypatch.chdir(tmp_path)
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind("sock.mp4")
        await refused(tmp_path / "sock.mp4", r"sock\.mp4 is a socket, not a regular file")
    assert stat.S_ISSOCK(os.lstat(tmp_path / "sock.mp4").st_mode)


def char_device(tmp_path: Path) -> Path:
    """A character device to aim at: a fresh ``/dev/null`` twin as root, else ``/dev/null``."""
    if os.geteuid() == 0:
        device = tmp_path / "null"
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        return device
    # without root nothing can be created in /dev, so even a broken check cannot harm it
    return Path("/dev/null")


async def test_a_symlink_to_a_device_is_refused(tmp_path: Path) -> None:
    device = char_device(tmp_path)
    link = tmp_path / "link.mp4"
    link.symlink_to(device)
    await refused(link, rf"link\.mp4 is a symbolic link to {device}, a character device")
    assert link.is_symlink()
    assert stat.S_ISCHR(os.stat(device).st_mode)


async def test_a_device_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("creating a device file needs root; /dev itself is never aimed at")
    device = char_device(tmp_path)
    await refused(device, r"null is a character device, not a regular file")
    assert stat.S_ISCHR(os.lstat(device).st_mode)


async def test_a_missing_directory_is_named_instead_of_the_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "deeper" / "video.mp4"
    with pytest.raises(DownloadError) as raised:
        await save(target)
    message = str(raised.value)
    assert f"the directory {tmp_path / 'missing' / 'deeper'} does not exist" in message
    assert ".part" not in message


async def test_a_file_in_place_of_the_directory_is_named(tmp_path: Path) -> None:
    (tmp_path / "videos").write_bytes(b"not a folder")
    await refused(tmp_path / "videos" / "v.mp4", r"videos is not a directory")


async def test_check_target_names_the_file_a_download_would_write(tmp_path: Path) -> None:
    real = tmp_path / "real.mp4"
    real.touch()
    (tmp_path / "link.mp4").symlink_to(real)
    assert await check_target(tmp_path / "link.mp4") == real
    assert await check_target(tmp_path / "new.mp4") == tmp_path / "new.mp4"
    with pytest.raises(DownloadError, match="does not exist"):
        await check_target(tmp_path / "nope" / "v.mp4")


async def test_a_link_repointed_while_downloading_is_not_replaced(tmp_path: Path) -> None:
    first, second = tmp_path / "first.mp4", tmp_path / "second.mp4"
    first.write_bytes(b"first")
    second.write_bytes(b"second")
    link = tmp_path / "link.mp4"
    link.symlink_to(first)

    def repoint() -> None:
        link.unlink()
        link.symlink_to(second)

    with pytest.raises(DownloadError, match=r"link\.mp4 changed while downloading"):
        await save(link, BytesStream(during=repoint))
    assert (first.read_bytes(), second.read_bytes()) == (b"first", b"second")
    assert leftovers(tmp_path) == []


async def test_a_target_turned_into_a_directory_while_downloading_is_left_alone(
    tmp_path: Path,
) -> None:
    target = tmp_path / "video.mp4"
    with pytest.raises(DownloadError, match=r"video\.mp4 is a directory"):
        await save(target, BytesStream(during=target.mkdir))
    assert target.is_dir()
    assert leftovers(tmp_path) == []


async def test_manager_download_into_a_missing_directory_names_the_directory(
    tmp_path: Path,
) -> None:
    policy = PollingPolicy(retry_interval=0.01, idle_wait=0.05, reconcile_delay=0)
    fake = FakeProvider(behaviour=FakeBehaviour(render_for=0.05, poll_after=0.01))
    async with TaskManager(providers={"fake": fake}, policy=policy) as manager:
        task = await manager.wait((await manager.create("a cat")).id, timeout=10)
        with pytest.raises(DownloadError, match=r"the directory .*missing does not exist"):
            await manager.download(task.id, tmp_path / "missing" / "cat.mp4")
    assert list(tmp_path.iterdir()) == []
