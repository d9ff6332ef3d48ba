"""The archive over ``obstore``: S3 (and R2, MinIO), GCS, Azure, a local directory, memory.

``obstore`` signs requests, streams multipart uploads and presigns URLs in one API for every
store, so none of that is written here. Credentials come from each store's usual environment
variables (``AWS_ACCESS_KEY_ID``, ``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_STORAGE_*``...),
read by obstore itself; this module only checks that the ones a store needs are there.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import anyio
import obstore
from obstore.exceptions import NotFoundError
from obstore.store import AzureStore, GCSStore, LocalStore, MemoryStore, S3Store, from_url

from .._models import MediaType
from .._saved import SavedContent
from .._secrets import register_secret, scrub
from ..providers._base import ContentStream
from ._base import Archive, ArchiveError, InvalidArchiveError

if TYPE_CHECKING:
    from obstore.store import ObjectStore

__all__ = ["SCHEMES", "ObstoreArchive", "open_archive"]

SCHEMES = ("s3", "gs", "az", "file", "memory")
"""The URL schemes :func:`open_archive` takes (``s3a``, ``abfs``, ``abfss`` and ``azure`` too)."""

_ALIASES = {"s3a": "s3", "abfs": "az", "abfss": "az", "azure": "az", "gs": "gs"}
# parts of the multipart upload: S3 wants at least 5 MiB; a few in flight keep the pipe full
# while bounding memory to about _PART_BYTES * (_PARTS_IN_FLIGHT + 1)
_PART_BYTES = 8 * 1024 * 1024
_PARTS_IN_FLIGHT = 4
_READ_CHUNK_BYTES = 256 * 1024
_CHECK_SECONDS = 30.0
# environment variables whose values are credentials: masked in every message from now on
_SECRET_VARIABLES = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_CLIENT_SECRET",
)
# obstore tries the instance metadata service when no credentials are configured; an error
# naming it (its address, or the token path of its API) means none were found anywhere
_NO_CREDENTIALS_HINTS = ("169.254.169.254", "/latest/api/token", "metadata", "credential")


class ObstoreArchive(Archive):
    """An :class:`Archive` over an obstore ``ObjectStore``; see :func:`open_archive`.

    Uploads stream as multipart uploads (parts of 8 MiB, 4 in flight), completed only once the
    last byte is in: a process killed mid-upload leaves an unfinished upload the store never
    shows as an object (configure the bucket to expire those), never a partial object.
    """

    def __init__(self, store: ObjectStore, uri: str) -> None:
        self._store = store
        self._uri = uri if uri.endswith("://") else uri.rstrip("/")

    def __repr__(self) -> str:
        return f"ObstoreArchive({self._uri!r})"

    @property
    def uri(self) -> str:
        """See :attr:`Archive.uri`."""
        return self._uri

    @property
    def store(self) -> ObjectStore:
        """The obstore store objects go to."""
        return self._store

    async def check(self) -> None:
        """List one page under the archive's prefix: the bucket exists and the keys work."""
        if isinstance(self._store, LocalStore):
            root = self._local_root()
            if not await anyio.Path(root).is_dir():
                raise InvalidArchiveError(
                    f"archive {self._uri}: the directory {root} does not exist", field="archive"
                )
            return
        try:
            with anyio.fail_after(_CHECK_SECONDS):
                await self._store.list_with_delimiter_async()
        except TimeoutError:
            raise InvalidArchiveError(
                f"archive {self._uri} did not answer within {_CHECK_SECONDS:g} s",
                field="archive",
                limit=_CHECK_SECONDS,
            ) from None
        except Exception as exc:  # obstore raises several unrelated types
            raise _refusal(self._uri, exc) from None

    async def upload(
        self, key: str, chunks: AsyncIterator[bytes], *, content_type: str | None = None
    ) -> None:
        """Stream ``chunks`` to ``key`` as one multipart upload (aborted if ``chunks`` fails)."""
        # a local directory keeps no attributes (obstore refuses them there)
        local = isinstance(self._store, LocalStore)
        attributes: Any = {"Content-Type": content_type} if content_type and not local else None
        try:
            await obstore.put_async(
                self._store,
                key,
                chunks,
                attributes=attributes,
                use_multipart=True,
                chunk_size=_PART_BYTES,
                max_concurrency=_PARTS_IN_FLIGHT,
            )
        except (OSError, obstore.exceptions.BaseError) as exc:
            raise ArchiveError(f"could not store {self.uri_of(key)}: {_first_line(exc)}") from None

    async def size(self, key: str) -> int | None:
        """See :meth:`Archive.size`."""
        try:
            meta = await obstore.head_async(self._store, key)
        except (FileNotFoundError, NotFoundError):
            return None
        except (OSError, obstore.exceptions.BaseError) as exc:
            raise ArchiveError(f"could not read {self.uri_of(key)}: {_first_line(exc)}") from None
        return meta["size"]

    @asynccontextmanager
    async def open(self, key: str) -> AsyncIterator[ContentStream]:
        """See :meth:`Archive.open`; a local archive's object opens as a file (for ranges)."""
        if isinstance(self._store, LocalStore):
            path = self._local_root() / key
            size = await self.size(key)
            if size is None:
                raise ArchiveError(f"{self.uri_of(key)} does not exist")
            yield SavedContent(path, byte_size=size, media_type=MediaType.VIDEO)
            return
        try:
            result = await obstore.get_async(self._store, key)
        except (FileNotFoundError, NotFoundError):
            raise ArchiveError(f"{self.uri_of(key)} does not exist") from None
        except (OSError, obstore.exceptions.BaseError) as exc:
            raise ArchiveError(f"could not read {self.uri_of(key)}: {_first_line(exc)}") from None
        yield _ObjectContent(result)

    async def sign(self, key: str, expires_in: timedelta) -> str | None:
        """A presigned GET for S3, GCS and Azure stores; ``None`` for local and memory ones."""
        if not isinstance(self._store, S3Store | GCSStore | AzureStore):
            return None
        try:
            return await obstore.sign_async(self._store, "GET", key, expires_in)
        except (OSError, obstore.exceptions.BaseError) as exc:
            raise ArchiveError(f"could not sign {self.uri_of(key)}: {_first_line(exc)}") from None

    async def delete(self, key: str) -> None:
        """See :meth:`Archive.delete`."""
        try:
            await obstore.delete_async(self._store, key)
        except (FileNotFoundError, NotFoundError):
            return
        except (OSError, obstore.exceptions.BaseError) as exc:
            raise ArchiveError(f"could not delete {self.uri_of(key)}: {_first_line(exc)}") from None

    def _local_root(self) -> Path:
        return Path(unquote(urlsplit(self._uri).path))


class _ObjectContent(ContentStream):
    def __init__(self, result: obstore.GetResult) -> None:
        self._result = result
        self.content_length = result.meta["size"]
        self.content_type = result.attributes.get("Content-Type")

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        async for chunk in self._result.stream(min_chunk_size=_READ_CHUNK_BYTES):
            yield bytes(chunk)


def open_archive(url: str, *, environ: Mapping[str, str] | None = None) -> ObstoreArchive:
    """The archive at ``url``: ``s3://bucket/prefix``, ``gs://…``, ``az://…``, ``file:///dir``
    or ``memory://``.

    Raises :class:`InvalidArchiveError` for an unknown scheme, a URL without a bucket, or
    credentials half given (a key id without its secret); :meth:`ObstoreArchive.check` (run
    by the manager at start) then finds a bucket that does not exist or refuses the keys.
    Endpoints and options come from the environment as obstore reads them (``AWS_ENDPOINT_URL``,
    ``AWS_REGION``, ``AWS_ALLOW_HTTP``...).
    """
    env = os.environ if environ is None else environ
    for name in _SECRET_VARIABLES:
        if env.get(name):
            register_secret(env[name])
    parts = urlsplit(url)
    scheme = _ALIASES.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme not in SCHEMES:
        shown = parts.scheme or "none"
        raise InvalidArchiveError(
            f"archive URL scheme {shown!r} is not supported; use one of "
            + ", ".join(f"{name}://" for name in SCHEMES),
            field="archive",
            limit=SCHEMES,
        )
    if scheme == "memory":
        return ObstoreArchive(MemoryStore(), "memory://")
    if scheme == "file":
        if not parts.path or parts.path == "/" or parts.netloc:
            raise InvalidArchiveError(
                "a file archive URL names an absolute directory: file:///path/to/dir",
                field="archive",
            )
        directory = unquote(parts.path)
        if not Path(directory).is_dir():
            raise InvalidArchiveError(
                f"archive {url}: the directory {directory} does not exist", field="archive"
            )
        return ObstoreArchive(LocalStore(directory), f"file://{parts.path.rstrip('/')}")
    if not parts.netloc:
        raise InvalidArchiveError(
            f"archive URL {scheme}://… names no bucket (e.g. {scheme}://my-bucket/videos)",
            field="archive",
        )
    if scheme == "s3":
        _check_aws_keys(env)
    try:
        store = from_url(url)
    except Exception as exc:  # obstore raises several unrelated types
        raise InvalidArchiveError(
            f"archive URL cannot be used: {_first_line(exc)}", field="archive"
        ) from None
    prefix = parts.path.strip("/")
    base = f"{parts.scheme}://{parts.netloc}" + (f"/{prefix}" if prefix else "")
    return ObstoreArchive(store, base)


def _check_aws_keys(env: Mapping[str, str]) -> None:
    has_id, has_secret = bool(env.get("AWS_ACCESS_KEY_ID")), bool(env.get("AWS_SECRET_ACCESS_KEY"))
    if has_id != has_secret:
        missing = "AWS_SECRET_ACCESS_KEY" if has_id else "AWS_ACCESS_KEY_ID"
        raise InvalidArchiveError(
            f"the S3 archive has half a key: {missing} is not set", field=missing
        )


def _refusal(uri: str, exc: Exception) -> InvalidArchiveError:
    text = str(exc)
    if "NoSuchBucket" in text or "NoSuchContainer" in text or "ContainerNotFound" in text:
        bucket = urlsplit(uri).netloc
        return InvalidArchiveError(
            f"archive {uri}: the bucket {bucket!r} does not exist", field="archive"
        )
    lowered = text.lower()
    if any(hint in lowered for hint in _NO_CREDENTIALS_HINTS):
        return InvalidArchiveError(
            f"archive {uri}: no credentials were found; set "
            + _credential_hint(urlsplit(uri).scheme),
            field="archive",
        )
    if "InvalidAccessKeyId" in text or "SignatureDoesNotMatch" in text or "403" in text:
        return InvalidArchiveError(
            f"archive {uri}: the store refused the credentials (access denied)", field="archive"
        )
    return InvalidArchiveError(f"archive {uri} cannot be used: {_first_line(exc)}", field="archive")


def _credential_hint(scheme: str) -> str:
    scheme = _ALIASES.get(scheme, scheme)
    if scheme == "gs":
        return "GOOGLE_APPLICATION_CREDENTIALS (or GOOGLE_SERVICE_ACCOUNT)"
    if scheme == "az":
        return "AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY (or a SAS or client id)"
    return "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a role: AWS_WEB_IDENTITY_TOKEN_FILE)"


def _first_line(exc: BaseException) -> str:
    """The gist of an obstore error: its first line, without any known secret."""
    return scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
