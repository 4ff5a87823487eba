"""Processing an uploaded file: what it is, its dimensions and duration, thumbnails and
a blurhash, and a copy without the metadata that could give its author away.

`process(source, workdir)` is synchronous and CPU-bound (run it in a worker thread or
process). Its outcome depends on the bytes alone (sniff.py says what they are):

- IMAGE: a JPEG, PNG, GIF or WebP that Pillow decodes, of at most `max_pixels`:
  dimensions as displayed (EXIF orientation applied), WebP thumbnails and a blurhash
  (pictures.py).
- VIDEO: a container FFmpeg opens whose picture track decodes: duration, dimensions as
  displayed (rotation and pixel aspect applied), thumbnails and a blurhash of a poster
  frame, 1 s in or the first frame of a shorter clip (recordings.py).
- AUDIO: a container with sound that decodes, and no picture track: its duration.
- FILE: anything else, including pictures and videos that do not decode, or are
  larger than `max_pixels`; `content_type` still says what the bytes claim to be.

`sanitized` is the copy to serve instead of the upload, whatever the kind: a JPEG,
PNG, GIF or WebP with its container rewritten, never re-encoded (sanitize.py; None when
there was nothing to remove); an MP4, QuickTime, 3GPP, Matroska, WebM, Ogg, MP3, FLAC,
WAV, AIFF, CAF or AAC recording remuxed by stream copy, with MP4 and QuickTime's index
first for playing while downloading (remux.py). When the remux fails, QuickTime/MP4
and Matroska/WebM, the formats that carry locations, get their metadata boxes padded
over in place instead; the other recordings are then served as uploaded (their tags
are titles, artists and comments), as are AMR and AVI. A remux that fails never
changes the kind.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import av

from services.media import pictures, recordings, remux, sanitize
from services.media.models import AUDIO, FILE, IMAGE, VIDEO
from services.media.sniff import Sniffed, sniff

log = logging.getLogger("caas.media")

DEFAULT_MAX_PIXELS = 100_000_000
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
    Everything else is streamed; a recording is read twice more to copy it.
    """
    digest = _sha256(source)
    sniffed = sniff(source)
    result: Result | None = None
    if sniffed.picture:
        result = _picture(source, workdir, sniffed, max_pixels)
    elif sniffed.demuxer:
        result = _recording(source, workdir, sniffed, max_pixels)
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


@contextmanager
def _mapped(source: Path) -> Iterator[mmap.mmap]:
    """The source's bytes, mapped read-only (it is not empty: sniffing found a type)."""
    with source.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        yield data


def _picture(source: Path, workdir: Path, sniffed: Sniffed, max_pixels: int) -> Result | None:
    with _mapped(source) as data:
        plan = _guarded("the container walk", lambda: sanitize.plan_picture(
            sniffed.picture, data))
        if plan is None:  # not a container we can strip: never served as a picture
            return None
        decoded = _guarded("Pillow", lambda: pictures.decode(
            source, sniffed.picture, plan.orientation, max_pixels))
        sanitized = None
        if plan.changed:
            sanitized = workdir / SANITIZED
            sanitize.write_plan(plan, data, sanitized)
    if decoded is None:
        return Result(sniffed.content_type, FILE, sanitized=sanitized)
    return Result(sniffed.content_type, IMAGE, decoded.width, decoded.height,
                  blurhash=decoded.blurhash, renditions=_write(decoded.thumbnails, workdir),
                  sanitized=sanitized)


def _recording(source: Path, workdir: Path, sniffed: Sniffed, max_pixels: int) -> Result:
    sanitized = _clean_recording(source, workdir / SANITIZED, sniffed)
    found = _guarded("FFmpeg", lambda: recordings.probe(source, sniffed.demuxer, max_pixels))
    if found is None:
        return Result(sniffed.content_type, FILE, sanitized=sanitized)
    duration_ms = found.duration_ms
    if duration_ms == 0:  # not in the headers (a live recording): count the packets
        duration_ms = _guarded("FFmpeg", lambda: recordings.scanned_duration_ms(
            source, sniffed.demuxer)) or 0
    if found.poster is None:
        return Result(sniffed.audio_type or sniffed.content_type, AUDIO,
                      duration_ms=duration_ms, sanitized=sanitized)
    poster = found.poster
    made = _guarded("the thumbnailer", lambda: pictures.make_thumbnails(
        poster, pictures.thumbnail_sizes(*poster.size), 1))
    if made is None:
        return Result(sniffed.content_type, FILE, sanitized=sanitized)
    return Result(sniffed.video_type or sniffed.content_type, VIDEO, *poster.size,
                  duration_ms=duration_ms, blurhash=made[1],
                  renditions=_write(made[0], workdir), sanitized=sanitized)


def _clean_recording(source: Path, target: Path, sniffed: Sniffed) -> Path | None:
    """`target`, once a copy of the recording without its metadata is written there
    (remux.py); None when the source is to be served as uploaded."""
    muxer = remux.MUXERS.get(sniffed.content_type, "")
    if muxer and _guarded("the remux", lambda: remux.remux(
            source, sniffed.demuxer, muxer, target)) is not None:
        return target
    target.unlink(missing_ok=True)
    in_place = remux.IN_PLACE.get(sniffed.demuxer)
    if in_place is None:
        if muxer:
            log.info("a recording (%s) that could not be remuxed is served as uploaded",
                     sniffed.content_type)
        return None
    with _mapped(source) as data:
        plan = _guarded("the container walk", lambda: in_place(data))
        if plan is None or not plan.changed:
            return None
        sanitize.write_plan(plan, data, target)
    return target


def _write(thumbnails: Sequence[pictures.Thumbnail],
           workdir: Path) -> tuple[LocalRendition, ...]:
    renditions = []
    for t in thumbnails:
        path = workdir / THUMBNAIL.format(t.size)
        path.write_bytes(t.data)
        renditions.append(LocalRendition(t.size, t.width, t.height, pictures.WEBP, path))
    return tuple(renditions)
