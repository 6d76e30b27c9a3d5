"""Real, incompressible PNGs for tests that need screenshot-sized images."""

from __future__ import annotations

import random
import struct
import zlib


def noisy_png(width: int, height: int, seed: int) -> bytes:
    """A real PNG of random pixels: about ``3 * width * height`` bytes, like a screenshot."""
    rng = random.Random(seed)
    raw = b"".join(b"\x00" + rng.randbytes(3 * width) for _ in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 1))
        + chunk(b"IEND", b"")
    )
