"""Files to process, made on the spot: pictures with metadata (Pillow), video and sound
(PyAV, stdlib wave), and bytes that only pretend to be pictures."""

from __future__ import annotations

import io
import struct
import wave
import zipfile
import zlib
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
from av.audio.stream import AudioStream
from av.video.stream import VideoStream
from PIL import Image, ImageCms, PngImagePlugin

# The corners of `quadrants` pictures, to tell how a thumbnail was turned.
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
GPS = {1: "N", 2: (52.0, 22.0, 12.5), 3: "E", 4: (4.0, 53.0, 44.1)}
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
       b'02/22-rdf-syntax-ns#"><rdf:Description>secret place</rdf:Description></rdf:RDF>'
       b"</x:xmpmeta>")


def quadrants(width: int, height: int) -> Image.Image:
    """RED top left, GREEN top right, BLUE bottom left, WHITE bottom right."""
    image = Image.new("RGB", (width, height), WHITE)
    half_w, half_h = width // 2, height // 2
    image.paste(RED, (0, 0, half_w, half_h))
    image.paste(GREEN, (half_w, 0, width, half_h))
    image.paste(BLUE, (0, half_h, half_w, height))
    return image


def exif(orientation: int | None = None, gps: bool = True) -> Image.Exif:
    data = Image.Exif()
    data[0x010F] = "PhoneMaker"  # Make
    data[0x0132] = "2026:11:30 10:00:00"  # DateTime
    if orientation is not None:
        data[0x0112] = orientation
    if gps:
        data[0x8825] = GPS
    return data


def srgb_profile() -> bytes:
    profile: bytes = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return profile


def jpeg(path: Path, size: tuple[int, int] = (400, 300), *, orientation: int | None = None,
         metadata: bool = True, encoding: dict[str, object] | None = None) -> Path:
    """A JPEG of `quadrants`, with (metadata) EXIF incl. GPS, XMP, a comment and an ICC
    profile; `encoding`: more of Pillow's JPEG options (progressive, restart markers)."""
    picture = quadrants(*size)
    options: dict[str, object] = {"quality": 92, **(encoding or {})}
    if metadata:
        options.update(exif=exif(orientation).tobytes(), xmp=XMP, comment=b"shot at home",
                       icc_profile=srgb_profile())
    elif orientation is not None:
        options["exif"] = exif(orientation, gps=False).tobytes()
    picture.save(path, "JPEG", **options)
    return path


def png(path: Path, size: tuple[int, int] = (300, 200), *, alpha: bool = True,
        metadata: bool = True) -> Path:
    """A PNG of `quadrants`, its left half transparent (alpha), with (metadata) text,
    iTXt, tIME and eXIf chunks and an ICC profile."""
    picture = quadrants(*size)
    if alpha:
        picture = picture.convert("RGBA")
        picture.paste((0, 0, 0, 0), (0, 0, size[0] // 2, size[1]))
    options: dict[str, object] = {}
    if metadata:
        info = PngImagePlugin.PngInfo()
        info.add_text("Author", "Alice Example")
        info.add_itxt("Location", "52.37, 4.89", zip=True)
        info.add(b"tIME", struct.pack(">HBBBBB", 2026, 11, 30, 10, 0, 0))
        options.update(pnginfo=info, exif=exif().tobytes(), icc_profile=srgb_profile())
    picture.save(path, "PNG", **options)
    return path


def gif(path: Path, colours: Sequence[tuple[int, int, int]] = (RED, GREEN, BLUE), *,
        comment: bool = True) -> Path:
    """An animated GIF, one frame per colour, looping, with a comment (`comment`)."""
    frames = [Image.new("RGB", (120, 90), colour) for colour in colours]
    options: dict[str, object] = {"comment": b"made at home"} if comment else {}
    frames[0].save(path, "GIF", save_all=True, append_images=frames[1:], duration=100,
                   loop=0, **options)
    return path


def webp(path: Path, size: tuple[int, int] = (400, 300), *, orientation: int | None = 6,
         animated: bool = False) -> Path:
    """A WebP of `quadrants` (then, animated, a BLUE frame) with EXIF incl. GPS and
    orientation, and XMP."""
    more = [Image.new("RGB", size, BLUE)] if animated else []
    quadrants(*size).save(path, "WEBP", exif=exif(orientation).tobytes(), xmp=XMP,
                          save_all=animated, append_images=more, duration=100)
    return path


def png_header(path: Path, width: int, height: int) -> Path:
    """A small PNG whose header claims `width` x `height` (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\0" * 65536)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body)
                     + chunk(b"IEND", b""))
    return path


def webp_canvas(path: Path, width: int, height: int) -> Path:
    """A small animated WebP whose canvas (VP8X) claims `width` x `height`."""
    frames = [Image.new("RGB", (16, 16), colour) for colour in (RED, BLUE)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:], duration=100)
    data = bytearray(buffer.getvalue())
    at = data.index(b"VP8X") + 12
    data[at:at + 6] = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    path.write_bytes(bytes(data))
    return path


def elf() -> bytes:
    """The header of a 64-bit x86-64 Linux executable, and some code."""
    header = struct.pack("<4sBBBBB7sHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, b"\0" * 7,
                         2, 0x3E, 1, 0x401000, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    return header + b"\x48\x31\xff\xb8\x3c\x00\x00\x00\x0f\x05" * 20


def pdf() -> bytes:
    return (b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
            b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
            b"trailer << /Root 1 0 R >>\n%%EOF\n")


def html() -> bytes:
    return b"\n  <HTML><body><script>alert(document.cookie)</script></body></HTML>\n"


def svg() -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n<!-- drawn by hand -->\n'
            b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
            b"<script>alert(1)</script></svg>\n")


def zip_archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("notes.txt", "hello " * 100)
    return buffer.getvalue()


# Video and sound


def video_codec() -> str:
    """libx264 when this PyAV has it, else mpeg4."""
    try:
        av.Codec("libx264", "w")
    except Exception:
        return "mpeg4"
    return "libx264"


def video(path: Path, *, container: str = "mp4", codec: str = "", seconds: float = 2.5,
          size: tuple[int, int] = (640, 360), rotation: int | None = None,
          fps: int = 25, picture: Image.Image | None = None, audio: str = "",
          tags: dict[str, str] | None = None, options: dict[str, str] | None = None,
          codec_tag: str = "") -> Path:
    """A video whose frames are RED for the first second and BLUE after it, or all
    `picture`. `rotation`: counterclockwise degrees to turn it by for display; `audio`:
    a codec for a sound track of silence; `tags`: container metadata (a phone's
    location); `options`: the muxer's; `codec_tag`: the picture track's sample entry."""
    with av.open(str(path), "w", format=container, options=options or {}) as output:
        output.metadata.update(tags or {})
        codec = codec or video_codec()
        quiet = {"x265-params": "log-level=none"} if codec == "libx265" else None
        stream = output.add_stream(codec, rate=fps, options=quiet)
        assert isinstance(stream, VideoStream)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if codec_tag:
            stream.codec_context.codec_tag = codec_tag
        if rotation is not None:
            stream.set_display_rotation(rotation)
        sound = _silence(output, audio, seconds) if audio else []
        red = picture or Image.new("RGB", size, RED)
        blue = picture or Image.new("RGB", size, BLUE)
        for index in range(round(seconds * fps)):
            frame = av.VideoFrame.from_image(  # type: ignore[no-untyped-call]
                red if index < fps else blue)
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
        output.mux(sound)
    return path


def _silence(output: av.container.OutputContainer, codec: str, seconds: float,
             rate: int = 48000) -> list[av.Packet[AudioStream]]:
    """`seconds` of silence encoded with `codec` in a new mono track of `output`."""
    stream = output.add_stream(codec, rate=rate)
    assert isinstance(stream, AudioStream) and stream.codec_context.codec.audio_formats
    stream.layout = "mono"
    sample_format = stream.codec_context.codec.audio_formats[0].name
    packets, total, at = [], round(seconds * rate), 0
    while at < total:
        samples = min(960, total - at)
        frame = av.AudioFrame(format=sample_format, layout="mono", samples=samples)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate, frame.pts, frame.time_base = rate, at, Fraction(1, rate)
        packets += stream.encode(frame)
        at += samples
    return packets + stream.encode(None)


def unknown_sizes(webm: bytes) -> bytes:
    """`webm` with its Segment's and Clusters' sizes unknown, as a browser's
    MediaRecorder writes them (each size field keeps its length)."""
    data = bytearray(webm)
    pos, end = 0, len(data)
    while pos < end:
        ident_length = 9 - data[pos].bit_length()
        ident = int.from_bytes(data[pos:pos + ident_length], "big")
        at = pos + ident_length
        length = 9 - data[at].bit_length()
        size = int.from_bytes(data[at:at + length], "big") & ((1 << (7 * length)) - 1)
        pos = at + length
        if ident in (0x18538067, 0x1F43B675):  # the Segment, a Cluster
            data[at:at + length] = ((1 << (7 * length + 1)) - 1).to_bytes(length, "big")
        if ident != 0x18538067:  # the Segment's children follow its header
            pos += size
    return bytes(data)


def sound(target: Path | io.RawIOBase, container: str, codec: str, seconds: float = 1.5,
          rate: int = 48000, tags: dict[str, str] | None = None) -> None:
    """`seconds` of silence encoded with `codec` in `container`, at `target` (a path, or
    a stream: one that cannot seek makes files without a duration in their header),
    with `tags` as the container's metadata."""
    with av.open(target if isinstance(target, io.RawIOBase) else str(target), "w",
                 format=container) as output:
        output.metadata.update(tags or {})
        output.mux(_silence(output, codec, seconds, rate))


def wav(path: Path, seconds: float = 1.5, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as output:
        output.setnchannels(1)
        output.setsampwidth(2)
        output.setframerate(rate)
        output.writeframes(b"\0\0" * round(seconds * rate))
    return path


class Unseekable(io.RawIOBase):
    """A write-only stream that cannot seek, as a live recording's."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.data += b
        return len(b)
