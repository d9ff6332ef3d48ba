"""A real S3 API on 127.0.0.1 for the archive tests: moto's server, in a thread of the session.

Buckets are made with plain unsigned HTTP (moto accepts it); objects go through obstore, as in
production, pointed at the server by the environment variables obstore reads.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx2
from moto.server import ThreadedMotoServer

__all__ = ["LocalS3", "local_s3"]

_UPLOAD_ID = re.compile(r"<UploadId>([^<]+)</UploadId>")
_KEY = re.compile(r"<Key>([^<]+)</Key>")


@dataclass(frozen=True)
class LocalS3:
    """The server's endpoint and the environment that points obstore at it."""

    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "testing-key-id",
            "AWS_SECRET_ACCESS_KEY": "testing-secret-access-key",
            "AWS_REGION": "us-east-1",
        }

    def create_bucket(self) -> str:
        """A new empty bucket's name."""
        name = f"archive-{uuid.uuid4().hex[:12]}"
        httpx2.put(f"{self.endpoint}/{name}").raise_for_status()
        return name

    def keys(self, bucket: str) -> list[str]:
        """The keys of the finished objects in ``bucket``."""
        answer = httpx2.get(f"{self.endpoint}/{bucket}", params={"list-type": "2"})
        answer.raise_for_status()
        return _KEY.findall(answer.text)

    def unfinished_uploads(self, bucket: str) -> list[str]:
        """The ids of the multipart uploads started in ``bucket`` and neither completed nor
        aborted."""
        answer = httpx2.get(f"{self.endpoint}/{bucket}?uploads")
        answer.raise_for_status()
        return _UPLOAD_ID.findall(answer.text)


@contextmanager
def local_s3() -> Iterator[LocalS3]:
    """Run moto's S3 server on a free port of 127.0.0.1 until the block ends."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield LocalS3(f"http://{host}:{port}")
    finally:
        server.stop()
