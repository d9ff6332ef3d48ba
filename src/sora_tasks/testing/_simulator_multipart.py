"""A small ``multipart/form-data`` parser, exact to the byte, with headers read by the stdlib."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import HTTP

__all__ = ["Form", "Upload", "parse_form"]


@dataclass(frozen=True, slots=True)
class Upload:
    """A file part: its declared file name and content type (``None`` when missing) and bytes."""

    filename: str | None
    content_type: str | None
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Form:
    """Text fields and file parts by field name; a repeated name keeps its last value."""

    fields: dict[str, str]
    files: dict[str, Upload]


def parse_form(body: bytes, content_type: str) -> Form:
    """Parse a ``multipart/form-data`` body. Raises ``ValueError`` on anything malformed."""
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise ValueError("multipart/form-data without a boundary")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    segments = (b"\r\n" + body).split(delimiter)
    if len(segments) < 2:
        raise ValueError("multipart body has no parts")
    form = Form({}, {})
    for segment in segments[1:]:
        if segment.startswith(b"--"):
            return form
        _add_part(form, segment)
    raise ValueError("multipart body is not closed by its final boundary")


def _add_part(form: Form, segment: bytes) -> None:
    head_end = segment.find(b"\r\n\r\n")
    if not segment.startswith(b"\r\n") or head_end < 0:
        raise ValueError("multipart part without headers")
    headers = BytesHeaderParser(policy=HTTP).parsebytes(segment[2 : head_end + 4])
    name = headers.get_param("name", header="content-disposition")
    if headers.get_content_disposition() != "form-data" or not isinstance(name, str):
        raise ValueError("multipart part without 'Content-Disposition: form-data; name=...'")
    data = segment[head_end + 4 :]
    filename = headers.get_filename()
    declared = headers.get_content_type() if headers.get("content-type") is not None else None
    if filename is None and declared in (None, "text/plain"):
        form.fields[name] = data.decode("utf-8")
    else:
        form.files[name] = Upload(filename or None, declared, data)
