"""Sound and video containers read with FFmpeg (PyAV): kind, duration and poster frame.

`probe(source, demuxer, max_pixels)` opens a container with the one demuxer sniffing
chose (never a probe that could pick a playlist format) and finds what it is: VIDEO
when a picture track (not cover art) decodes, with its poster frame as displayed
(rotation and pixel aspect applied), AUDIO when only sound decodes. Broken packets are
skipped, up to AV_MAX_ERRORS of them; at most POSTER_MAX_FRAMES frames are decoded.
FFmpeg's errors on bad bytes propagate (av.FFmpegError; some are OSErrors too).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.stream import Disposition
from av.video.stream import VideoStream
from PIL import Image

from services.media.models import AUDIO, VIDEO

POSTER_SECONDS = 1.0
POSTER_MAX_FRAMES = 300  # decoded at most to reach the poster frame
AV_MAX_ERRORS = 20  # packets that fail to decode before a track counts as broken


@dataclass(frozen=True, slots=True)
class Tracks:
    """What a container holds: its kind, duration (0 when the headers lack it) and,
    for VIDEO, the poster frame as displayed."""

    kind: str  # VIDEO or AUDIO
    duration_ms: int
    poster: Image.Image | None = None  # VIDEO: the poster frame, as displayed


def open_recording(source: Path, demuxer: str) -> InputContainer:
    """The container at `source`, read with `demuxer` only: "file:" so that no other
    protocol is ever read from the name, and no probe (a probe could pick a playlist
    format that opens other files or URLs)."""
    return av.open(f"file:{source}", format=demuxer)


def probe(source: Path, demuxer: str, max_pixels: int) -> Tracks | None:
    """The kind, duration and poster of the container at `source`; None when its
    tracks do not decode or a picture track is larger than `max_pixels`."""
    with open_recording(source, demuxer) as container:
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
            return None if poster is None else Tracks(VIDEO, duration_ms, poster)
        if container.streams.audio and next(
                _frames(container, container.streams.audio[0]), None) is not None:
            return Tracks(AUDIO, duration_ms)
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


def scanned_duration_ms(source: Path, demuxer: str) -> int:
    """The duration found by reading every packet's timestamps (no decoding)."""
    first: float | None = None
    last = 0.0
    with open_recording(source, demuxer) as container:
        for packet in container.demux():
            if packet.pts is None or packet.time_base is None:
                continue
            start = float(packet.pts * packet.time_base)
            first = start if first is None else min(first, start)
            last = max(last, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    return 0 if first is None else round((last - first) * 1000)
