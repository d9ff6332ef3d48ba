"""Where a download may land: a regular file (or none yet) in a directory that exists.

A symlink is written through: the file it points to is replaced and the link stays a link. A
dangling symlink is refused rather than followed: it usually means a moved or unmounted target,
and creating whatever file a link names is how a planted link in a shared directory redirects a
write. Anything else that exists and is not a regular file (directory, device, FIFO, socket) is
refused, since renaming a file over it would destroy it (or, for a FIFO, hang a reader).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ._exceptions import DownloadError

__all__ = ["resolve_target"]

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def resolve_target(target: str | os.PathLike[str]) -> Path:
    """The file a download to ``target`` writes: ``target``, or the file its symlink names.

    Raises :class:`DownloadError` naming the path when its directory is missing, when it is a
    dangling or looping symlink, or when it exists and is not a regular file. Blocking (it
    stats the file system): call it from a worker thread.
    """
    path = Path(target)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        _check_directory(path)
        return path
    except NotADirectoryError:
        _check_directory(path)
        raise
    if stat.S_ISLNK(info.st_mode):
        try:
            real = path.resolve(strict=True)
        except FileNotFoundError:
            raise DownloadError(
                f"{path} is a symbolic link to {os.readlink(path)}, which does not exist; "
                "refusing to create a file through a dangling link"
            ) from None
        except (RuntimeError, OSError) as exc:
            raise DownloadError(
                f"{path} is a symbolic link that cannot be resolved: {exc}"
            ) from None
        _refuse_special(real, os.stat(real).st_mode, f"{path} is a symbolic link to {real}, ")
        return real
    _refuse_special(path, info.st_mode, f"{path} is ")
    return path


def _refuse_special(path: Path, mode: int, prefix: str) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    raise DownloadError(f"{prefix}{kind}, not a regular file; refusing to replace it")


def _check_directory(path: Path) -> None:
    directory = path.parent
    try:
        info = os.stat(directory)
    except FileNotFoundError:
        raise DownloadError(
            f"cannot save to {path}: the directory {directory} does not exist"
        ) from None
    except NotADirectoryError:
        raise DownloadError(
            f"cannot save to {path}: {directory} is not a directory (part of it is a file)"
        ) from None
    if not stat.S_ISDIR(info.st_mode):
        raise DownloadError(f"cannot save to {path}: {directory} is not a directory")
