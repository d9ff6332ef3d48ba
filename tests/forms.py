"""Reading the multipart bodies our adapters send, with the standard library's MIME parser."""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser


@dataclass(frozen=True)
class Part:
    """One form field: plain (no filename) or a file part."""

    name: str
    value: bytes
    filename: str | None = None
    content_type: str | None = None

    @property
    def text(self) -> str:
        return self.value.decode()


def parse_form(content_type: str, body: bytes) -> dict[str, Part]:
    """The parts of a ``multipart/form-data`` body by field name; fails on anything else."""
    assert content_type.startswith("multipart/form-data; boundary="), content_type
    head = f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    assert isinstance(message, EmailMessage) and message.is_multipart()
    parts: dict[str, Part] = {}
    for item in message.iter_parts():
        assert isinstance(item, EmailMessage)
        name = item.get_param("name", header="content-disposition")
        assert isinstance(name, str), item
        payload = item.get_payload(decode=True)
        assert isinstance(payload, bytes)
        explicit_type = item.get("content-type")
        parts[name] = Part(
            name=name,
            value=payload,
            filename=item.get_filename(),
            content_type=None if explicit_type is None else item.get_content_type(),
        )
    return parts
