"""A Pillow image as slow-path Bitmap Updates (MS-RDPBCGR 2.2.9.1.1.3.1.2): uncompressed
tiles of at most 64x64 pixels, rows bottom-up, in the colour depth the client confirmed.

Uncompressed bitmaps are the one encoding every client must accept; a prompt repaints a
few hundred kilobytes, so compression is not worth its code here.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from PIL import Image

UPDATETYPE_BITMAP = 0x0001
TILE = 64
#: Keep each Update PDU inside one MCS Send Data Indication (PER length <= 32767).
MAX_UPDATE_BYTES = 30 * 1024
#: The front asks for 32 bpp in its Demand Active and clients adopt it; 24 is kept for a
#: client that confirms it anyway.
SUPPORTED_BPP = (24, 32)


def _pixels(tile: Image.Image, bpp: int) -> bytes:
    """Raw little-endian pixels, bottom-up (MS-RDPBCGR 2.2.9.1.1.3.1.2.2 bitmapDataStream)."""
    flipped = tile.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    if bpp == 32:
        return flipped.tobytes("raw", "BGRX")
    return flipped.tobytes("raw", "BGR")


def _tiles(image: Image.Image, left: int, top: int, bpp: int) -> Iterator[bytes]:
    """One TS_BITMAP_DATA per tile. A tile's width is padded to a multiple of 4 pixels (rows
    of uncompressed bitmaps are 4-byte aligned) and clipped back by destRight."""
    for y in range(0, image.height, TILE):
        for x in range(0, image.width, TILE):
            width = min(TILE, image.width - x)
            height = min(TILE, image.height - y)
            padded = (width + 3) & ~3
            tile = image.crop((x, y, x + padded, y + height))
            data = _pixels(tile, bpp)
            yield (
                struct.pack(
                    "<HHHHHHHHH",
                    left + x,
                    top + y,
                    left + x + width - 1,
                    top + y + height - 1,
                    padded,
                    height,
                    bpp,
                    0,  # flags: uncompressed
                    len(data),
                )
                + data
            )


def bitmap_updates(image: Image.Image, left: int, top: int, bpp: int) -> list[bytes]:
    """Update PDU bodies (updateType + TS_UPDATE_BITMAP_DATA) painting ``image`` with its
    top-left corner at (left, top)."""
    if bpp not in SUPPORTED_BPP:
        raise ValueError(f"cannot paint at {bpp} bits per pixel (supported: {SUPPORTED_BPP})")
    image = image.convert("RGB")
    updates: list[bytes] = []
    batch: list[bytes] = []
    for rectangle in _tiles(image, left, top, bpp):
        if batch and sum(map(len, batch)) + len(rectangle) > MAX_UPDATE_BYTES:
            updates.append(_update(batch))
            batch = []
        batch.append(rectangle)
    if batch:
        updates.append(_update(batch))
    return updates


def _update(rectangles: list[bytes]) -> bytes:
    return struct.pack("<HH", UPDATETYPE_BITMAP, len(rectangles)) + b"".join(rectangles)
