#!/usr/bin/env python3
"""Writes eng/icon.png, the packages' icon (128x128): a patch (a square with a bandage's stitched band) over a
64-bit word's bit grid, in two colours. Pure Python (zlib, struct) so the same bytes come out everywhere."""
import os
import struct
import zlib

SIZE = 128
BACK = (0x1B, 0x3A, 0x5C)    # deep blue
GRID = (0x2A, 0x55, 0x82)
PATCH = (0xF2, 0xA9, 0x00)   # amber
STITCH = (0x1B, 0x3A, 0x5C)


def pixel(x, y):
    # Rounded corners: transparent outside a radius-16 corner arc.
    r = 16
    cx = min(max(x, r), SIZE - 1 - r)
    cy = min(max(y, r), SIZE - 1 - r)
    if (x - cx) ** 2 + (y - cy) ** 2 > r * r:
        return (0, 0, 0, 0)
    # The patch: a band across the middle, tilted by one pixel in four.
    band = abs((y - 64) - (x - 64) // 4) < 18
    if band and 12 <= x < 116:
        stitch = abs((y - 64) - (x - 64) // 4) in (11, 12) and (x // 6) % 2 == 0
        return (*(STITCH if stitch else PATCH), 255)
    # The grid: 8x8 cells of 64 bits.
    if x % 16 in (0, 1) or y % 16 in (0, 1):
        return (*GRID, 255)
    return (*BACK, 255)


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


rows = b"".join(b"\0" + bytes(v for x in range(SIZE) for v in pixel(x, y)) for y in range(SIZE))
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", SIZE, SIZE, 8, 6, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "icon.png"), "wb") as f:
    f.write(png)
