"""Pictures without the metadata that could give their author away, made by rewriting
their container and never re-encoding them.

`plan_picture(fmt, data)` walks a JPEG, PNG, GIF or WebP and returns a `Plan`: the
source's byte ranges to keep and the new bytes to put between them; `write_plan`
writes it. JPEG keeps only its image segments, JFIF (without its thumbnail), ICC
profile and Adobe colour transform; PNG only the chunks that affect how it renders
(APNG frames included); GIF its frames, looping and ICC profile; WebP its image,
animation and ICC chunks. All else goes (EXIF with GPS, XMP, IPTC, comments, text,
timestamps, embedded thumbnails and anything after the image's end, such as a second
picture or a motion photo's video). A picture whose EXIF orientation is not 1 gets a
minimal EXIF with only that tag back, so the served original still displays upright.

Plans are also how remux.py blanks a recording's metadata in place.
"""

from __future__ import annotations

import mmap
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

ZEROS = 1 << 16  # zeros are written this many at a time

# New bytes, the source's bytes [start, end), or that many zero bytes.
Piece = bytes | tuple[int, int] | int


class Malformed(Exception):
    """The container's structure is broken where it matters."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What to write instead of a source: its `pieces` in order."""

    pieces: tuple[Piece, ...]
    orientation: int  # the EXIF orientation found (1 when none)
    changed: bool  # the pieces differ from the source


def plan_picture(fmt: str, data: mmap.mmap) -> Plan:
    """The plan of a picture in Pillow format `fmt` (JPEG, PNG, GIF or WEBP). Raises
    Malformed when `data` does not begin as that format says; any other damage makes
    a plan that keeps what can be walked (see each format's planner)."""
    return _PLANS[fmt](data)


def write_plan(plan: Plan, data: mmap.mmap, path: Path) -> None:
    """Write `plan` of the source `data` to `path` (replaced). Raises OSError."""
    with path.open("wb") as out, memoryview(data) as view:
        for piece in plan.pieces:
            if isinstance(piece, int):
                for at in range(0, piece, ZEROS):
                    out.write(bytes(min(ZEROS, piece - at)))
            else:
                out.write(piece if isinstance(piece, bytes) else view[piece[0]:piece[1]])


def _exif_orientation(exif: bytes) -> int:
    """The Orientation tag (1 to 8) of EXIF data (TIFF, "Exif\\0\\0" first or not)."""
    parsed = Image.Exif()
    try:
        parsed.load(exif)
        value = parsed.get(0x0112)
    except Exception:  # a broken EXIF block orients nothing
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _minimal_exif(orientation: int) -> bytes:
    """A TIFF-structured EXIF block holding only the Orientation tag."""
    return struct.pack(">2sHIHHHIHHI", b"MM", 42, 8, 1, 0x0112, 3, 1, orientation, 0, 0)


_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # what ends entropy-coded data
_JPEG_KEPT_APPS = ((0xE0, b"JFIF\0"), (0xE2, b"ICC_PROFILE\0"), (0xEE, b"Adobe"))


def _plan_jpeg(data: mmap.mmap) -> Plan:
    """Keep SOI, every segment that is not APPn or COM, JFIF (its thumbnail cut), ICC
    profile and Adobe APP14, scans, EOI; garbage between segments and bytes after EOI
    go. A file cut in a scan keeps what it has; one cut in a segment ends before it."""
    if data[:2] != b"\xff\xd8":
        raise Malformed("no SOI")
    pieces: list[Piece] = [b"\xff\xd8"]
    orientation, changed, exif_at, exif_seen = 1, False, 1, False
    pos, in_scan = 2, False
    while True:
        found = _JPEG_MARKER.search(data, pos)
        start = len(data) if found is None else found.start()
        if in_scan and start > pos:
            pieces.append((pos, start))
        elif start != pos:
            changed = True  # garbage (a truncated file has none after its last scan)
        if found is None:
            break
        marker = data[start + 1]
        in_scan = False
        if marker == 0xD9:
            pieces.append(b"\xff\xd9")
            changed = changed or start + 2 != len(data)
            break
        if marker == 0x01:
            pieces.append((start, start + 2))
            pos = start + 2
            continue
        end = start + 2 + int.from_bytes(data[start + 2:start + 4], "big")
        if marker == 0xD8 or end > len(data) or end < start + 4:
            changed = True  # a second SOI or a cut segment: nothing after it decodes
            break
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            head = data[start + 4:min(end, start + 18)]
            if marker == 0xE1 and head.startswith(b"Exif\0\0") and not exif_seen:
                orientation, exif_seen = _exif_orientation(data[start + 4:end]), True
            kept = _jpeg_app(marker, head, data, start, end)
            changed = changed or kept != (start, end)
            if kept is not None:
                pieces.append(kept)
                if marker == 0xE0 and len(pieces) == 2:
                    exif_at = 2  # an Exif APP1 goes after a leading JFIF APP0
        else:
            pieces.append((start, end))
            in_scan = marker == 0xDA
        pos = end
    if orientation != 1:
        exif = b"Exif\0\0" + _minimal_exif(orientation)
        pieces.insert(exif_at, b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif)
        changed = True
    return Plan(tuple(pieces), orientation, changed)


def _jpeg_app(marker: int, head: bytes, data: mmap.mmap, start: int, end: int) -> Piece | None:
    """What to keep of an APPn or COM segment at [start, end) whose payload begins
    with `head`: all of it, JFIF without its thumbnail, or nothing."""
    if not any(marker == app and head.startswith(prefix) for app, prefix in _JPEG_KEPT_APPS):
        return None
    if marker == 0xE0 and end - start > 18:  # JFIF with a thumbnail
        return b"\xff\xe0\x00\x10" + data[start + 4:start + 16] + b"\0\0"
    return (start, end)


# Ancillary PNG chunks that change how the picture renders; critical chunks all stay.
_PNG_KEPT = frozenset({b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB", b"cICP",
                       b"mDCV", b"cLLI", b"bKGD", b"hIST", b"pHYs", b"acTL", b"fcTL",
                       b"fdAT"})


def _plan_png(data: mmap.mmap) -> Plan:
    """Keep the signature, critical chunks and those of _PNG_KEPT, up to IEND; text,
    eXIf, tIME, private chunks and bytes after IEND go."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise Malformed("no PNG signature")
    pieces: list[Piece] = [(0, 8)]
    orientation, changed, exif_at, exif_seen = 1, False, 0, False
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = min(pos + 12 + length, len(data))
        if kind == b"eXIf" and not exif_seen:
            orientation, exif_seen = _exif_orientation(data[pos + 8:end - 4]), True
        if kind == b"IDAT" and not exif_at:
            exif_at = len(pieces)
        if not kind[0] & 0x20 or kind in _PNG_KEPT:  # critical: upper case first
            pieces.append((pos, end))
        else:
            changed = True
        pos = end
        if kind == b"IEND":
            break
    changed = changed or pos != len(data)
    if orientation != 1:
        exif = _minimal_exif(orientation)
        chunk = b"eXIf" + exif
        pieces.insert(exif_at or len(pieces),
                      struct.pack(">I", len(exif)) + chunk + struct.pack(">I", zlib.crc32(chunk)))
        changed = True
    return Plan(tuple(pieces), orientation, changed)


_GIF_KEPT_APPS = frozenset({b"NETSCAPE2.0", b"ANIMEXTS1.0", b"ICCRGBG1012"})


def _plan_gif(data: mmap.mmap) -> Plan:
    """Keep the header, frames, graphic control, looping and ICC blocks, up to the
    trailer; comments, plain text, other application blocks (XMP) and what follows
    the trailer go."""
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        raise Malformed("no GIF header")
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    pieces: list[Piece] = [(0, pos)]
    changed = False
    while pos < len(data):
        block = data[pos]
        if block == 0x3B:  # trailer
            pieces.append((pos, pos + 1))
            pos += 1
            break
        if block == 0x2C and pos + 10 <= len(data):  # a frame
            flags = data[pos + 9]
            table = 3 << ((flags & 7) + 1) if flags & 0x80 else 0
            end = _sub_blocks(data, pos + 10 + table + 1)
            pieces.append((pos, end))
        elif block == 0x21 and pos + 2 <= len(data):  # an extension
            end = _sub_blocks(data, pos + 2)
            label = data[pos + 1]
            if label == 0xF9 or (label == 0xFF and data[pos + 2:pos + 3] == b"\x0b"
                                 and data[pos + 3:pos + 14] in _GIF_KEPT_APPS):
                pieces.append((pos, end))
            else:
                changed = True
        else:
            break  # garbage, or a truncated block
        pos = end
    changed = changed or pos != len(data)
    return Plan(tuple(pieces), 1, changed)


def _sub_blocks(data: mmap.mmap, pos: int) -> int:
    """Where a chain of GIF data sub-blocks starting at `pos` ends."""
    while pos < len(data):
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos
    return len(data)


_WEBP_KEPT = frozenset({b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"ICCP"})


def _plan_webp(data: mmap.mmap) -> Plan:
    """Keep the image, alpha, animation and ICC chunks, with the VP8X flags for EXIF
    and XMP cleared; EXIF, XMP, unknown chunks and what follows the RIFF go."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise Malformed("no RIFF WEBP header")
    riff_end = min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    chunks: list[bytes | tuple[int, int]] = []
    orientation, changed, exif_seen = 1, False, False
    extended, vp8x = -1, b""
    pos = 12
    while pos + 8 <= riff_end:
        kind, length = struct.unpack("<4sI", data[pos:pos + 8])
        end = min(pos + 8 + length + (length & 1), riff_end)
        if kind == b"EXIF" and not exif_seen:
            orientation, exif_seen = _exif_orientation(data[pos + 8:end]), True
        if kind == b"VP8X" and extended < 0 and end - pos >= 18:
            extended, vp8x = len(chunks), data[pos:end]
            chunks.append(vp8x)
        elif kind in _WEBP_KEPT:
            chunks.append((pos, end))
        else:
            changed = True
        pos = end
    changed = changed or pos != len(data)
    if extended < 0:
        orientation = 1
    else:
        flags = vp8x[8] & ~0x0C  # no EXIF (0x08), no XMP (0x04)
        if orientation != 1:
            exif = _minimal_exif(orientation)
            chunks.append(b"EXIF" + struct.pack("<I", len(exif)) + exif)
            flags |= 0x08
        changed = changed or flags != vp8x[8]
        chunks[extended] = vp8x[:8] + bytes([flags]) + vp8x[9:]
    total = 4 + sum(len(c) if isinstance(c, bytes) else c[1] - c[0] for c in chunks)
    return Plan((b"RIFF" + struct.pack("<I", total) + b"WEBP", *chunks), orientation, changed)


_PLANS: dict[str, Callable[[mmap.mmap], Plan]] = {
    "JPEG": _plan_jpeg, "PNG": _plan_png, "GIF": _plan_gif, "WEBP": _plan_webp}
