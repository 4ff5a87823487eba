"""Processing an uploaded file: what it is, its dimensions and duration, thumbnails and
a blurhash, and for pictures a copy without the metadata that could give its author
away.

`process(source, workdir)` is synchronous and CPU-bound (run it in a worker thread or
process). Its outcome depends on the bytes alone:

- IMAGE: a JPEG, PNG, GIF or WebP that Pillow decodes, of at most `max_pixels`:
  dimensions as displayed (EXIF orientation applied), WebP thumbnails, a blurhash, and
  `sanitized`, the picture to serve instead of the upload.
- VIDEO: a container FFmpeg opens whose picture track decodes: duration, dimensions as
  displayed (rotation and pixel aspect applied), thumbnails and a blurhash of a poster
  frame (1 s in, or the first frame of a shorter clip).
- AUDIO: a container with sound that decodes, and no picture track: its duration.
- FILE: anything else, including pictures and videos that do not decode, or are
  larger than `max_pixels`; `content_type` still says what the bytes claim to be, and
  a JPEG, PNG, GIF or WebP among them still gets its `sanitized` copy.

Sanitizing rewrites the picture's container and never re-encodes it: JPEG keeps only
its image segments, JFIF (without its thumbnail), ICC profile and Adobe colour
transform; PNG only the chunks that affect how it renders (APNG frames included); GIF
its frames, looping and ICC profile; WebP its image, animation and ICC chunks. All
else goes (EXIF with GPS, XMP, IPTC, comments, text, timestamps, embedded thumbnails
and anything after the image's end, such as a second picture or a motion photo's
video). A picture whose EXIF orientation is not 1 gets a minimal EXIF with only that
tag back, so the served original still displays upright, as its thumbnails do.
"""

from __future__ import annotations

import hashlib
import io
import logging
import mmap
import re
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import av
import blurhash  # type: ignore[import-untyped]
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.stream import Disposition
from av.video.stream import VideoStream
from PIL import Image

from services.media.models import AUDIO, FILE, IMAGE, VIDEO
from services.media.sniff import Sniffed, sniff

log = logging.getLogger("caas.media")

DEFAULT_MAX_PIXELS = 100_000_000
WEBP = "image/webp"
WEBP_QUALITY = 80
# Thumbnails, smallest first: name, the box it fits in, libwebp's method (0 fastest ..
# 6 smallest). Method 4 makes the small one a quarter smaller for about 1 ms; on the
# larger ones it saves 2-5 % for three times the encoding time (bench/media_thumbnails.py).
SIZES = (("small", 160, 4), ("medium", 480, 1), ("large", 1280, 1))
BLURHASH_BOX = 32  # the blurhash is computed from the small thumbnail shrunk to this
POSTER_SECONDS = 1.0
POSTER_MAX_FRAMES = 300  # decoded at most to reach the poster frame
AV_MAX_ERRORS = 20  # packets that fail to decode before a track counts as broken
MAX_ICC = 65536  # larger ICC profiles are not copied into thumbnails
SANITIZED = "sanitized"  # the file names `process` writes in its workdir, beside
THUMBNAIL = "{}.webp"  # whatever the caller keeps there

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LocalRendition:
    """A thumbnail written by `process`: `size` is small, medium or large."""

    size: str
    width: int
    height: int
    content_type: str
    path: Path


@dataclass(frozen=True, slots=True)
class Result:
    """What `process` found (see the module's docstring); fields mirror
    models.Processed."""

    content_type: str  # from the bytes, never from the declaration
    kind: str  # models.IMAGE, VIDEO, AUDIO or FILE
    width: int = 0
    height: int = 0
    duration_ms: int = 0
    blurhash: str = ""
    sha256: str = ""  # hex, of the source's bytes
    renditions: tuple[LocalRendition, ...] = ()  # smallest first
    sanitized: Path | None = None  # serve this instead of the source (None: the source)


def process(source: Path, workdir: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Result:
    """Process the file at `source`, writing thumbnails and the sanitized original into
    `workdir` (an existing directory; files `small.webp`, `medium.webp`, `large.webp`
    and `sanitized` there are replaced).

    Bad bytes never raise: they make a FILE result. Raises OSError when the
    environment fails (source unreadable, workdir missing, disk full) and MemoryError.
    Pictures are decoded in memory, JPEG at the smallest scale that still covers the
    largest thumbnail; one of more than `max_pixels` is a FILE and never decoded.
    Pillow itself refuses more than 2 x Image.MAX_IMAGE_PIXELS (179 M) whatever
    `max_pixels` says, and warns (DecompressionBombWarning) above Image.MAX_IMAGE_PIXELS.
    Everything else is streamed.
    """
    digest = _sha256(source)
    sniffed = sniff(source)
    result: Result | None = None
    if sniffed.picture:
        result = _picture(source, workdir, sniffed, max_pixels)
    elif sniffed.demuxer:
        result = _audio_video(source, workdir, sniffed, max_pixels)
    if result is None:
        result = Result(sniffed.content_type, FILE)
    return replace(result, sha256=digest)


def _sha256(path: Path) -> str:
    """The hex SHA-256 of a file, read in chunks."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _guarded(what: str, step: Callable[[], T]) -> T | None:
    """`step()`, or None when it fails on bad bytes. Errors of the environment (an
    OSError with an errno, MemoryError) propagate, except FFmpeg's: it reports broken
    input as EIO or ENOMEM too, and the source has just been read whole (sha256)."""
    try:
        return step()
    except av.FFmpegError as e:
        failure: Exception = e
    except MemoryError:
        raise
    except OSError as e:
        if e.errno is not None:
            raise
        failure = e
    except Exception as e:
        failure = e
    log.info("media bytes rejected by %s: %s: %s", what, type(failure).__name__, failure)
    return None


# Pictures


@dataclass(frozen=True, slots=True)
class _Thumbnail:
    size: str
    width: int
    height: int
    data: bytes  # WebP


@dataclass(frozen=True, slots=True)
class _Decoded:
    width: int  # as displayed
    height: int
    thumbnails: tuple[_Thumbnail, ...]
    blurhash: str


def _picture(source: Path, workdir: Path, sniffed: Sniffed, max_pixels: int) -> Result | None:
    with source.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        plan = _guarded("the container walk", lambda: _PLANS[sniffed.picture](data))
        if plan is None:  # not a container we can strip: never served as a picture
            return None
        decoded = _guarded("Pillow", lambda: _decode_picture(
            source, sniffed.picture, plan.orientation, max_pixels))
        sanitized = None
        if plan.changed:
            sanitized = workdir / SANITIZED
            _write_plan(plan, data, sanitized)
    if decoded is None:
        return Result(sniffed.content_type, FILE, sanitized=sanitized)
    return Result(sniffed.content_type, IMAGE, decoded.width, decoded.height,
                  blurhash=decoded.blurhash, renditions=_write(decoded.thumbnails, workdir),
                  sanitized=sanitized)


def _decode_picture(source: Path, fmt: str, orientation: int, max_pixels: int) -> _Decoded | None:
    """Decode the first frame, at a reduced scale when the format allows (JPEG), and
    make its thumbnails. None when it is not a picture of format `fmt` or too large."""
    with Image.open(source, formats=[fmt]) as im:
        if im.format not in (fmt, "MPO" if fmt == "JPEG" else fmt):
            return None
        width, height = im.size
        if width < 1 or height < 1 or width * height > max_pixels:
            return None
        targets = _thumbnail_sizes(width, height)
        if fmt == "JPEG":
            im.draft("RGB", targets[-1][1])
        im.load()
        thumbnails, placeholder = _make_thumbnails(im, targets, orientation)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return _Decoded(width, height, thumbnails, placeholder)


def _thumbnail_sizes(width: int, height: int) -> list[tuple[str, tuple[int, int], int]]:
    """(size name, dimensions, WebP method) of the thumbnails of a picture, smallest
    first: those whose box is smaller than the picture, and always `small`."""
    sizes = []
    for name, box, method in SIZES:
        if name != "small" and width <= box and height <= box:
            continue
        scale = min(1.0, box / width, box / height)
        sizes.append((name, (max(1, round(width * scale)), max(1, round(height * scale))),
                      method))
    return sizes


def _make_thumbnails(image: Image.Image, sizes: Sequence[tuple[str, tuple[int, int], int]],
                    orientation: int) -> tuple[tuple[_Thumbnail, ...], str]:
    """The thumbnails of `image` (stored orientation, at any scale not below the
    largest size) and the blurhash of the smallest, oriented for display. Each size is
    resized from the next larger one: cheaper, and as sharp."""
    icc = image.info.get("icc_profile")
    if not (isinstance(icc, bytes) and len(icc) <= MAX_ICC and icc[16:20] == b"RGB "):
        icc = None
    current = _displayable(image)
    made = []
    for name, size, method in reversed(sizes):
        if current.size != size:
            current = current.resize(size, Image.Resampling.LANCZOS)
        shown = _orient(current.convert("RGBA") if current.mode == "RGBa" else current,
                       orientation)
        made.append((name, shown, method))
    thumbnails = tuple(_Thumbnail(name, *shown.size, _encode_webp(shown, method, icc))
                       for name, shown, method in reversed(made))
    return thumbnails, _blurhash_of(made[-1][1])


def _displayable(image: Image.Image) -> Image.Image:
    """`image` in RGB, or in premultiplied RGBa when it has transparency (resizing
    straight RGBA would bleed the colour of transparent pixels into the edges)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):  # 16-bit grey (PNG)
        image = image.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        return image.convert("RGBA").convert("RGBa")
    return image.convert("RGB")


_ORIENTATIONS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                8: Image.Transpose.ROTATE_90}


def _orient(image: Image.Image, orientation: int) -> Image.Image:
    """`image` as an EXIF `orientation` says to display it."""
    method = _ORIENTATIONS.get(orientation)
    return image if method is None else image.transpose(method)


def _encode_webp(image: Image.Image, method: int, icc: bytes | None) -> bytes:
    buffer = io.BytesIO()
    if image.mode == "RGBA" and image.getchannel("A").getextrema() == (255, 255):
        image = image.convert("RGB")
    options: dict[str, object] = {"quality": WEBP_QUALITY, "method": method}
    if icc:
        options["icc_profile"] = icc
    image.save(buffer, "WEBP", **options)
    return buffer.getvalue()


def _blurhash_of(image: Image.Image) -> str:
    """The blurhash (4 x 3 components) of `image`, from a copy that fits in 32 x 32."""
    scale = min(1.0, BLURHASH_BOX / image.width, BLURHASH_BOX / image.height)
    tiny = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                        Image.Resampling.BOX)
    if tiny.mode == "RGBA":  # transparent parts as on a white page
        tiny = Image.alpha_composite(Image.new("RGBA", tiny.size, "white"), tiny)
    raw = tiny.convert("RGB").tobytes()
    row = 3 * tiny.width
    pixels = [[raw[x:x + 3] for x in range(y, y + row, 3)] for y in range(0, len(raw), row)]
    value: str = blurhash.encode(pixels, 4, 3)
    return value


def _write(thumbnails: Sequence[_Thumbnail], workdir: Path) -> tuple[LocalRendition, ...]:
    renditions = []
    for t in thumbnails:
        path = workdir / THUMBNAIL.format(t.size)
        path.write_bytes(t.data)
        renditions.append(LocalRendition(t.size, t.width, t.height, WEBP, path))
    return tuple(renditions)


# Sanitizing: a plan of the source's byte ranges to keep and of new bytes to put between
# them, made by walking the container's structure (never decoding the image).

_Piece = bytes | tuple[int, int]  # new bytes, or the source's bytes [start, end)


class _Malformed(Exception):
    """The container's structure is broken where it matters."""


@dataclass(frozen=True, slots=True)
class _Plan:
    pieces: tuple[_Piece, ...]
    orientation: int  # the EXIF orientation found (1 when none)
    changed: bool  # the pieces differ from the source


def _write_plan(plan: _Plan, data: mmap.mmap, path: Path) -> None:
    with path.open("wb") as out, memoryview(data) as view:
        for piece in plan.pieces:
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


def _plan_jpeg(data: mmap.mmap) -> _Plan:
    """Keep SOI, every segment that is not APPn or COM, JFIF (its thumbnail cut), ICC
    profile and Adobe APP14, scans, EOI; garbage between segments and bytes after EOI
    go. A file cut in a scan keeps what it has; one cut in a segment ends before it."""
    if data[:2] != b"\xff\xd8":
        raise _Malformed("no SOI")
    pieces: list[_Piece] = [b"\xff\xd8"]
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
    return _Plan(tuple(pieces), orientation, changed)


def _jpeg_app(marker: int, head: bytes, data: mmap.mmap, start: int, end: int) -> _Piece | None:
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


def _plan_png(data: mmap.mmap) -> _Plan:
    """Keep the signature, critical chunks and those of _PNG_KEPT, up to IEND; text,
    eXIf, tIME, private chunks and bytes after IEND go."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise _Malformed("no PNG signature")
    pieces: list[_Piece] = [(0, 8)]
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
    return _Plan(tuple(pieces), orientation, changed)


_GIF_KEPT_APPS = frozenset({b"NETSCAPE2.0", b"ANIMEXTS1.0", b"ICCRGBG1012"})


def _plan_gif(data: mmap.mmap) -> _Plan:
    """Keep the header, frames, graphic control, looping and ICC blocks, up to the
    trailer; comments, plain text, other application blocks (XMP) and what follows
    the trailer go."""
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        raise _Malformed("no GIF header")
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    pieces: list[_Piece] = [(0, pos)]
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
    return _Plan(tuple(pieces), 1, changed)


def _sub_blocks(data: mmap.mmap, pos: int) -> int:
    """Where a chain of GIF data sub-blocks starting at `pos` ends."""
    while pos < len(data):
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos
    return len(data)


_WEBP_KEPT = frozenset({b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"ICCP"})


def _plan_webp(data: mmap.mmap) -> _Plan:
    """Keep the image, alpha, animation and ICC chunks, with the VP8X flags for EXIF
    and XMP cleared; EXIF, XMP, unknown chunks and what follows the RIFF go."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise _Malformed("no RIFF WEBP header")
    riff_end = min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    chunks: list[_Piece] = []
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
    return _Plan((b"RIFF" + struct.pack("<I", total) + b"WEBP", *chunks), orientation, changed)


_PLANS: dict[str, Callable[[mmap.mmap], _Plan]] = {
    "JPEG": _plan_jpeg, "PNG": _plan_png, "GIF": _plan_gif, "WEBP": _plan_webp}


# Audio and video


@dataclass(frozen=True, slots=True)
class _Tracks:
    kind: str  # VIDEO or AUDIO
    duration_ms: int
    poster: Image.Image | None = None  # VIDEO: the poster frame, as displayed


def _audio_video(source: Path, workdir: Path, sniffed: Sniffed,
                 max_pixels: int) -> Result | None:
    found = _guarded("FFmpeg", lambda: _open_media(source, sniffed.demuxer, max_pixels))
    if found is None:
        return None
    duration_ms = found.duration_ms
    if duration_ms == 0:  # not in the headers (a live recording): count the packets
        duration_ms = _guarded("FFmpeg", lambda: _scanned_duration_ms(source, sniffed.demuxer)) or 0
    if found.poster is None:
        return Result(sniffed.audio_type or sniffed.content_type, AUDIO, duration_ms=duration_ms)
    poster = found.poster
    made = _guarded("the thumbnailer", lambda: _make_thumbnails(
        poster, _thumbnail_sizes(*poster.size), 1))
    if made is None:
        return None
    return Result(sniffed.video_type or sniffed.content_type, VIDEO, *poster.size,
                  duration_ms=duration_ms, blurhash=made[1],
                  renditions=_write(made[0], workdir))


def _open(source: Path, demuxer: str) -> InputContainer:
    # "file:" so that no other protocol is ever read from the name; the demuxer is
    # forced, so FFmpeg never probes (a probe could pick a playlist that opens URLs).
    return av.open(f"file:{source}", format=demuxer)


def _open_media(source: Path, demuxer: str, max_pixels: int) -> _Tracks | None:
    """The container's kind, duration (0 when the headers lack it) and poster; None
    when its tracks do not decode or a picture track is larger than `max_pixels`."""
    with _open(source, demuxer) as container:
        duration_ms = 0
        if container.duration and container.duration > 0:
            duration_ms = round(container.duration / 1000)  # AV_TIME_BASE: microseconds
        else:
            for s in container.streams:
                if s.duration and s.time_base:
                    duration_ms = max(duration_ms, round(s.duration * s.time_base * 1000))
        video = next((s for s in container.streams.video
                      if Disposition.attached_pic not in s.disposition), None)  # not cover art
        if video is not None:
            if video.codec_context.width * video.codec_context.height > max_pixels:
                return None
            poster = _poster(container, video, max_pixels)
            return None if poster is None else _Tracks(VIDEO, duration_ms, poster)
        if container.streams.audio and next(
                _frames(container, container.streams.audio[0]), None) is not None:
            return _Tracks(AUDIO, duration_ms)
    return None


def _poster(container: InputContainer, stream: VideoStream,
            max_pixels: int) -> Image.Image | None:
    """The frame POSTER_SECONDS in (or the first, for a shorter clip) as displayed."""
    start = 0.0
    if stream.start_time is not None and stream.time_base is not None:
        start = float(stream.start_time * stream.time_base)
    chosen: av.VideoFrame | None = None
    for frame in _frames(container, stream):
        if not isinstance(frame, av.VideoFrame):
            continue
        if frame.width * frame.height > max_pixels:
            return None
        late = frame.time is None or frame.time - start >= POSTER_SECONDS
        if chosen is None or late:
            chosen = frame
        if late:
            break
    if chosen is None:
        return None
    image: Image.Image = chosen.to_image()  # type: ignore[no-untyped-call]
    aspect = stream.sample_aspect_ratio
    if aspect and aspect > 0 and aspect != 1:  # anamorphic: pixels are not square
        image = image.resize((max(1, round(image.width * aspect)), image.height),
                             Image.Resampling.LANCZOS)
    turn = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180,
            270: Image.Transpose.ROTATE_270}.get(chosen.rotation % 360)
    return image if turn is None else image.transpose(turn)  # rotation: counterclockwise


def _frames(container: InputContainer, stream: VideoStream | AudioStream,
            ) -> Iterator[av.VideoFrame | av.AudioFrame]:
    """The stream's frames that decode whole, skipping packets that do not (up to
    AV_MAX_ERRORS of them), and at most POSTER_MAX_FRAMES."""
    errors = count = 0
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.InvalidDataError:
            errors += 1
            if errors > AV_MAX_ERRORS:
                return
            continue
        for frame in frames:
            if isinstance(frame, av.VideoFrame | av.AudioFrame) and not frame.is_corrupt:
                yield frame
                count += 1
                if count >= POSTER_MAX_FRAMES:
                    return


def _scanned_duration_ms(source: Path, demuxer: str) -> int:
    """The duration found by reading every packet's timestamps (no decoding)."""
    first: float | None = None
    last = 0.0
    with _open(source, demuxer) as container:
        for packet in container.demux():
            if packet.pts is None or packet.time_base is None:
                continue
            start = float(packet.pts * packet.time_base)
            first = start if first is None else min(first, start)
            last = max(last, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    return 0 if first is None else round((last - first) * 1000)
