"""Real images made with Pillow, for validation tests."""

from __future__ import annotations

import io

from PIL import Image


def make_image(width: int = 1280, height: int = 720, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(buffer, format=fmt)
    return buffer.getvalue()
