"""process(): what files are, their thumbnails, blurhash and sanitized originals."""

from __future__ import annotations

import hashlib
import io
import random
import resource
import struct
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import blurhash  # type: ignore[import-untyped]
import pytest
from PIL import Image

from services.media import models, remux
from services.media.processing import Result, process
from tests.media import samples
from tests.media.samples import BLUE, GREEN, RED, WHITE


def run(tmp_path: Path, source: Path, **options: int) -> Result:
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    return process(source, workdir, **options)


def sizes(result: Result) -> dict[str, tuple[int, int]]:
    return {r.size: (r.width, r.height) for r in result.renditions}


def near(colour: tuple[int, ...], expected: tuple[int, ...], slack: int = 40) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(colour, expected, strict=False))


def corners(image: Image.Image) -> list[tuple[int, ...]]:
    """The colours a quarter in from each corner: top left, top right, bottom left,
    bottom right."""
    rgb = image.convert("RGB")
    w, h = rgb.size
    return [rgb.getpixel((x, y)) for y in (h // 4, 3 * h // 4)  # type: ignore[misc]
            for x in (w // 4, 3 * w // 4)]


def chunks(png: bytes) -> list[bytes]:
    kinds, pos = [], 8
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        kinds.append(kind)
        pos += 12 + length
    return kinds


# Pictures


@pytest.mark.parametrize("encoding", [
    {}, {"progressive": True}, {"restart_marker_rows": 1}], ids=["baseline", "progressive",
                                                               "restart-markers"])
def test_a_jpeg_with_gps_and_orientation_6_is_turned_and_stripped(
        tmp_path: Path, encoding: dict[str, object]) -> None:
    source = samples.jpeg(tmp_path / "photo.jpg", (2000, 1500), orientation=6,
                          encoding=encoding)
    result = run(tmp_path, source)

    assert (result.content_type, result.kind) == ("image/jpeg", models.IMAGE)
    assert (result.width, result.height) == (1500, 2000)  # stored 2000 x 1500, turned
    assert result.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert sizes(result) == {"small": (120, 160), "medium": (360, 480), "large": (960, 1280)}
    assert [r.size for r in result.renditions] == ["small", "medium", "large"]
    for rendition in result.renditions:
        assert rendition.content_type == "image/webp"
        with Image.open(rendition.path) as thumbnail:
            assert thumbnail.format == "WEBP"
            assert thumbnail.size == (rendition.width, rendition.height)
            assert not thumbnail.getexif() and "xmp" not in thumbnail.info
            # Orientation 6: the stored top left (RED) is displayed top right.
            assert all(map(near, corners(thumbnail), (BLUE, RED, WHITE, GREEN)))
    assert len(result.blurhash) == 28 and blurhash.components(result.blurhash) == (4, 3)

    assert result.sanitized is not None
    with Image.open(result.sanitized) as clean, Image.open(source) as original:
        assert dict(clean.getexif()) == {0x0112: 6}
        assert clean.getexif().get_ifd(0x8825) == {}
        assert "xmp" not in clean.info and "comment" not in clean.info
        assert clean.info["icc_profile"] == original.info["icc_profile"]
        assert clean.tobytes() == original.tobytes()  # the same scans: not re-encoded
    data = result.sanitized.read_bytes()
    assert b"PhoneMaker" not in data and b"secret place" not in data


@pytest.mark.parametrize(("size", "expected"), [
    ((100, 80), {"small": (100, 80)}),  # smaller than every box: small, at its own size
    ((480, 480), {"small": (160, 160)}),  # fits medium's box: no medium
    ((1280, 960), {"small": (160, 120), "medium": (480, 360)}),
    ((3000, 1000), {"small": (160, 53), "medium": (480, 160), "large": (1280, 427)}),
])
def test_thumbnails_are_never_larger_than_the_picture(
        tmp_path: Path, size: tuple[int, int], expected: dict[str, tuple[int, int]]) -> None:
    result = run(tmp_path, samples.jpeg(tmp_path / "p.jpg", size, metadata=False))
    assert result.kind == models.IMAGE
    assert (result.width, result.height) == size
    assert sizes(result) == expected
    assert result.sanitized is None  # nothing to strip: the upload is served


def test_a_png_keeps_its_alpha_and_loses_its_text(tmp_path: Path) -> None:
    source = samples.png(tmp_path / "p.png", (600, 400))
    result = run(tmp_path, source)

    assert (result.content_type, result.kind) == ("image/png", models.IMAGE)
    assert (result.width, result.height) == (600, 400)
    assert sizes(result) == {"small": (160, 107), "medium": (480, 320)}
    with Image.open(result.renditions[1].path) as thumbnail:
        assert thumbnail.mode == "RGBA"
        assert thumbnail.getpixel((10, 10))[3] == 0  # type: ignore[index]
        assert near(thumbnail.getpixel((470, 10)), (*GREEN, 255))  # type: ignore[arg-type]

    assert result.sanitized is not None
    data = result.sanitized.read_bytes()
    kinds = chunks(data)
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    assert b"iCCP" in kinds and b"IDAT" in kinds
    assert not {b"tEXt", b"iTXt", b"zTXt", b"tIME", b"eXIf"} & set(kinds)
    assert b"Alice" not in data
    with Image.open(result.sanitized) as clean, Image.open(source) as original:
        assert clean.tobytes() == original.tobytes()


@pytest.mark.parametrize("mode", ["L", "CMYK", "P", "LA", "I;16", "1"])
def test_pictures_of_every_mode_make_thumbnails(tmp_path: Path, mode: str) -> None:
    picture = samples.quadrants(300, 200)
    if mode == "I;16":
        picture = picture.convert("L").convert("I").point(lambda v: v * 257).convert("I;16")
    elif mode == "P":
        picture = picture.convert("P")
        picture.info["transparency"] = 0
    else:
        picture = picture.convert(mode)
    path = tmp_path / "p"
    if mode == "CMYK":
        picture.save(path, "JPEG")
    else:
        picture.save(path, "PNG")
    result = run(tmp_path, path)
    assert result.kind == models.IMAGE
    with Image.open(result.renditions[0].path) as thumbnail:
        assert thumbnail.size == (160, 107)
        # Grey levels survive (16-bit grey is scaled, not clipped to white).
        darkest, lightest = thumbnail.convert("L").getextrema()
        assert isinstance(darkest, int) and isinstance(lightest, int)
        assert lightest - darkest > 100


def test_an_animated_gif_is_thumbnailed_from_its_first_frame(tmp_path: Path) -> None:
    source = samples.gif(tmp_path / "a.gif")
    result = run(tmp_path, source)
    assert (result.content_type, result.kind) == ("image/gif", models.IMAGE)
    assert (result.width, result.height) == (120, 90)
    with Image.open(result.renditions[0].path) as thumbnail:
        assert near(thumbnail.convert("RGB").getpixel((50, 40)), RED)  # type: ignore[arg-type]
    assert result.sanitized is not None
    with Image.open(result.sanitized) as clean, Image.open(source) as original:
        assert getattr(clean, "n_frames", 1) == 3 and clean.info.get("loop") == 0
        assert "comment" not in clean.info
        for frame in range(3):
            clean.seek(frame)
            original.seek(frame)
            assert clean.convert("RGB").tobytes() == original.convert("RGB").tobytes()
    assert b"made at home" not in result.sanitized.read_bytes()


def test_a_gif_without_metadata_is_served_as_uploaded(tmp_path: Path) -> None:
    result = run(tmp_path, samples.gif(tmp_path / "a.gif", comment=False))
    assert result.kind == models.IMAGE and result.sanitized is None


@pytest.mark.parametrize("animated", [False, True], ids=["still", "animated"])
def test_a_webp_keeps_only_its_orientation(tmp_path: Path, animated: bool) -> None:
    source = samples.webp(tmp_path / "p.webp", animated=animated)
    result = run(tmp_path, source)
    assert (result.content_type, result.kind) == ("image/webp", models.IMAGE)
    assert (result.width, result.height) == (300, 400)
    with Image.open(result.renditions[0].path) as thumbnail:  # the first frame, turned
        assert all(map(near, corners(thumbnail), (BLUE, RED, WHITE, GREEN)))
    assert result.sanitized is not None
    with Image.open(result.sanitized) as clean, Image.open(source) as original:
        assert dict(clean.getexif()) == {0x0112: 6}
        assert "xmp" not in clean.info
        assert getattr(clean, "n_frames", 1) == (2 if animated else 1)
        for frame in range(getattr(clean, "n_frames", 1)):
            clean.seek(frame)
            original.seek(frame)
            assert clean.tobytes() == original.tobytes()
    assert b"secret place" not in result.sanitized.read_bytes()


def test_a_jfif_thumbnail_is_cut(tmp_path: Path) -> None:
    plain = samples.jpeg(tmp_path / "plain.jpg", metadata=False).read_bytes()
    assert plain[2:4] == b"\xff\xe0" and plain[6:11] == b"JFIF\0"
    end = 4 + int.from_bytes(plain[4:6], "big")
    # A JFIF APP0 with a 2 x 1 thumbnail: what the picture showed before it was cropped.
    jfif = plain[6:18] + bytes([2, 1]) + bytes([255, 0, 0, 0, 0, 255])
    source = tmp_path / "thumb.jpg"
    source.write_bytes(plain[:2] + b"\xff\xe0" + (len(jfif) + 2).to_bytes(2, "big") + jfif
                       + plain[end:])
    result = run(tmp_path, source)
    assert result.kind == models.IMAGE and result.sanitized is not None
    clean = result.sanitized.read_bytes()
    assert clean == plain  # the APP0 as Pillow wrote it: no thumbnail


def test_a_second_picture_after_a_jpeg_is_dropped(tmp_path: Path) -> None:
    source = tmp_path / "mpo.jpg"
    samples.quadrants(200, 100).save(source, "MPO", save_all=True,
                                     append_images=[Image.new("RGB", (200, 100), BLUE)])
    result = run(tmp_path, source)
    assert result.kind == models.IMAGE
    assert result.sanitized is not None
    with Image.open(result.sanitized) as clean:
        assert clean.format == "JPEG" and getattr(clean, "n_frames", 1) == 1
    assert result.sanitized.stat().st_size < source.stat().st_size * 0.7


def test_a_truncated_jpeg_is_a_file_still_stripped(tmp_path: Path) -> None:
    whole = samples.jpeg(tmp_path / "whole.jpg", (800, 600), orientation=3).read_bytes()
    source = tmp_path / "cut.jpg"
    source.write_bytes(whole[:len(whole) * 2 // 3])  # in the scan
    result = run(tmp_path, source)
    assert (result.content_type, result.kind) == ("image/jpeg", models.FILE)
    assert result.renditions == () and result.blurhash == "" and result.width == 0
    assert result.sanitized is not None
    with Image.open(result.sanitized) as clean:
        assert dict(clean.getexif()) == {0x0112: 3}
    assert b"PhoneMaker" not in result.sanitized.read_bytes()


def test_a_jpeg_cut_in_its_exif_is_a_file_without_it(tmp_path: Path) -> None:
    whole = samples.jpeg(tmp_path / "whole.jpg").read_bytes()
    source = tmp_path / "cut.jpg"
    source.write_bytes(whole[:whole.index(b"PhoneMaker") + 20])
    result = run(tmp_path, source)
    assert (result.content_type, result.kind) == ("image/jpeg", models.FILE)
    assert result.sanitized is not None
    assert b"PhoneMaker" not in result.sanitized.read_bytes()


@pytest.mark.parametrize("make", [samples.jpeg, samples.png, samples.webp])
def test_thumbnails_carry_no_metadata(tmp_path: Path, make: Callable[..., Path]) -> None:
    result = run(tmp_path, make(tmp_path / "p", (100, 80)))  # small: the picture as is
    assert sizes(result) == {"small": (100, 80)} or sizes(result) == {"small": (80, 100)}
    data = result.renditions[0].path.read_bytes()
    assert b"EXIF" not in data and b"XMP" not in data and b"secret place" not in data
    with Image.open(io.BytesIO(data)) as thumbnail:
        assert not thumbnail.getexif()


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(("make", "content_type"), [
    # Past what Pillow opens at all (2 x Image.MAX_IMAGE_PIXELS).
    (lambda path: samples.png_header(path, 50_000, 50_000), "image/png"),
    # Past max_pixels only: Pillow opens it (and warns); process() must not decode it.
    (lambda path: samples.webp_canvas(path, 13_000, 13_000), "image/webp"),
], ids=["png-2.5-gigapixels", "webp-169-megapixels"])
def test_a_decompression_bomb_is_a_file_and_never_allocated(
        tmp_path: Path, make: Callable[[Path], Path], content_type: str) -> None:
    source = make(tmp_path / "bomb")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    result = run(tmp_path, source)
    assert time.perf_counter() - started < 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 100_000  # KiB
    assert (result.content_type, result.kind) == (content_type, models.FILE)
    assert result.renditions == ()


def test_pictures_over_max_pixels_are_files(tmp_path: Path) -> None:
    source = samples.jpeg(tmp_path / "p.jpg", (1200, 1000))
    result = run(tmp_path, source, max_pixels=1_000_000)
    assert (result.content_type, result.kind) == ("image/jpeg", models.FILE)
    assert result.renditions == ()
    assert result.sanitized is not None  # still served without its GPS
    assert run(tmp_path, source, max_pixels=1_200_000).kind == models.IMAGE


# Not pictures, whatever they are called


@pytest.mark.parametrize(("data", "content_type"), [
    (samples.elf(), "application/x-executable"),
    (samples.pdf(), "application/pdf"),
    (samples.html(), "text/html"),
    (samples.svg(), "image/svg+xml"),
    (samples.zip_archive(), "application/zip"),
    ("Grüße aus Köln\nzweite Zeile\n".encode(), "text/plain"),
    (bytes(range(256)) * 8, "application/octet-stream"),
    (b"", "application/octet-stream"),
], ids=["elf", "pdf", "html", "svg", "zip", "text", "binary", "empty"])
def test_bytes_named_as_a_picture_get_their_own_type(
        tmp_path: Path, data: bytes, content_type: str) -> None:
    source = tmp_path / "photo.png"
    source.write_bytes(data)
    result = run(tmp_path, source)
    assert (result.content_type, result.kind) == (content_type, models.FILE)
    assert result.renditions == () and result.sanitized is None and result.blurhash == ""
    assert result.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()


@pytest.mark.parametrize(("fmt", "content_type"), [
    ("TIFF", "image/tiff"), ("BMP", "image/x-ms-bmp"), ("ICO", "image/x-icon")])
def test_pictures_we_do_not_render_are_files(tmp_path: Path, fmt: str,
                                             content_type: str) -> None:
    source = tmp_path / "p.jpg"
    samples.quadrants(64, 64).save(source, fmt)
    result = run(tmp_path, source)
    assert (result.content_type, result.kind) == (content_type, models.FILE)
    assert result.renditions == ()


# Video and sound


def test_a_video_has_its_duration_size_and_a_poster_1_s_in(tmp_path: Path) -> None:
    result = run(tmp_path, samples.video(tmp_path / "v.mp4"))
    assert (result.content_type, result.kind) == ("video/mp4", models.VIDEO)
    assert abs(result.duration_ms - 2500) <= 50
    assert (result.width, result.height) == (640, 360)
    assert sizes(result) == {"small": (160, 90), "medium": (480, 270)}
    with Image.open(result.renditions[1].path) as poster:
        assert near(poster.convert("RGB").getpixel((240, 135)), BLUE)  # type: ignore[arg-type]
    assert blurhash.components(result.blurhash) == (4, 3)
    assert result.sanitized is not None  # remuxed (see "Recordings without metadata")


def test_a_short_clip_has_its_first_frame_as_poster(tmp_path: Path) -> None:
    result = run(tmp_path, samples.video(tmp_path / "v.webm", container="webm",
                                         codec="libvpx-vp9", seconds=0.6, size=(320, 240)))
    assert (result.content_type, result.kind) == ("video/webm", models.VIDEO)
    assert abs(result.duration_ms - 600) <= 50
    with Image.open(result.renditions[0].path) as poster:
        assert near(poster.convert("RGB").getpixel((80, 60)), RED)  # type: ignore[arg-type]


def test_a_rotated_video_is_reported_as_displayed(tmp_path: Path) -> None:
    # A phone held upright records landscape frames, to be turned clockwise (-90).
    result = run(tmp_path, samples.video(tmp_path / "v.mp4", rotation=-90, size=(320, 240),
                                         picture=samples.quadrants(320, 240)))
    assert result.kind == models.VIDEO
    assert (result.width, result.height) == (240, 320)
    assert sizes(result) == {"small": (120, 160)}
    with Image.open(result.renditions[0].path) as poster:
        assert all(map(near, corners(poster), (BLUE, RED, WHITE, GREEN)))


@pytest.mark.parametrize(("container", "codec", "name", "content_type"), [
    ("ogg", "libopus", "a.ogg", "audio/ogg"),
    ("ipod", "aac", "a.m4a", "audio/mp4"),
    ("mp4", "aac", "a.mp4", "audio/mp4"),
    ("mp3", "libmp3lame", "a.mp3", "audio/mpeg"),
    ("webm", "libopus", "a.webm", "audio/webm"),
    ("flac", "flac", "a.flac", "audio/flac"),
    ("wav", "pcm_s16le", "a.wav", "audio/wav"),
    ("adts", "aac", "a.aac", "audio/aac"),  # raw AAC: no container, frame headers only
])
def test_sound_has_its_duration(tmp_path: Path, container: str, codec: str, name: str,
                                content_type: str) -> None:
    source = tmp_path / name
    samples.sound(source, container, codec, seconds=1.5)
    result = run(tmp_path, source)
    assert (result.content_type, result.kind) == (content_type, models.AUDIO)
    assert abs(result.duration_ms - 1500) <= 60
    assert result.renditions == () and result.width == 0


def test_an_mp3_without_id3_tag_is_told_by_its_frames(tmp_path: Path) -> None:
    tagged = tmp_path / "tagged.mp3"
    samples.sound(tagged, "mp3", "libmp3lame", seconds=1.5)
    data = tagged.read_bytes()
    assert data.startswith(b"ID3")
    tag = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(data[6:10]))
    source = tmp_path / "bare.mp3"
    source.write_bytes(data[tag:])
    result = run(tmp_path, source)
    assert (result.content_type, result.kind) == ("audio/mpeg", models.AUDIO)
    assert abs(result.duration_ms - 1500) <= 60


def test_utf16_text_is_no_mp3(tmp_path: Path) -> None:
    # Its byte order mark FF FE reads as an MPEG audio frame header, but no second
    # frame follows.
    source = tmp_path / "notes.txt"
    source.write_bytes("Meeting notes, Monday".encode("utf-16"))
    result = run(tmp_path, source)
    assert (result.content_type, result.kind) == ("text/plain", models.FILE)


def test_a_wav_written_by_the_standard_library(tmp_path: Path) -> None:
    result = run(tmp_path, samples.wav(tmp_path / "a.wav", seconds=2.25))
    assert (result.content_type, result.kind, result.duration_ms) == (
        "audio/wav", models.AUDIO, 2250)


def test_a_live_recording_without_a_duration_is_measured(tmp_path: Path) -> None:
    stream = samples.Unseekable()
    samples.sound(stream, "webm", "libopus", seconds=2.5)
    source = tmp_path / "voice.webm"
    source.write_bytes(bytes(stream.data))
    result = run(tmp_path, source)
    assert (result.content_type, result.kind) == ("audio/webm", models.AUDIO)
    assert abs(result.duration_ms - 2500) <= 60


def corrupt_videos(tmp_path: Path) -> list[tuple[Path, str]]:
    whole = samples.video(tmp_path / "v.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"  # the index (moov) is at the end: cut off
    cut.write_bytes(whole[:len(whole) // 2])
    noise = tmp_path / "noise.mp4"  # the index intact, the frames noise
    start, end = whole.index(b"mdat") + 4, whole.index(b"moov") - 4
    noise.write_bytes(whole[:start] + bytes((i * 7919) % 251 for i in range(end - start))
                      + whole[end:])
    webm = tmp_path / "v.webm"  # an EBML header, then garbage
    webm.write_bytes(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01webm" + bytes(range(256)) * 20)
    return [(cut, "video/mp4"), (noise, "video/mp4"), (webm, "video/webm")]


def test_corrupt_videos_are_files(tmp_path: Path) -> None:
    for source, content_type in corrupt_videos(tmp_path):
        result = run(tmp_path, source)
        assert (result.content_type, result.kind) == (content_type, models.FILE), source.name
        assert result.renditions == () and result.duration_ms == 0


def damaged(data: bytes, seed: int, count: int) -> list[bytes]:
    """`count` damaged copies of `data`: cut short, bytes changed, a stretch replaced."""
    rng = random.Random(seed)
    copies = []
    for index in range(count):
        copy = bytearray(data)
        if index % 3 == 0:
            copy = copy[:rng.randrange(1, len(copy))]
        elif index % 3 == 1:
            for _ in range(rng.randrange(1, 20)):
                copy[rng.randrange(len(copy))] = rng.randrange(256)
        else:
            at = rng.randrange(len(copy))
            copy[at:at + rng.randrange(1, 200)] = rng.randbytes(rng.randrange(200))
        copies.append(bytes(copy))
    return copies


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow on broken EXIF blocks
def test_damaged_files_never_raise(tmp_path: Path) -> None:
    made = [(samples.jpeg(tmp_path / "a.jpg", (600, 400), orientation=6), models.IMAGE),
            (samples.png(tmp_path / "b.png"), models.IMAGE),
            (samples.gif(tmp_path / "c.gif"), models.IMAGE),
            (samples.webp(tmp_path / "d.webp"), models.IMAGE),
            (samples.video(tmp_path / "e.mp4", seconds=1.2, size=(160, 120)), models.VIDEO),
            (samples.video(tmp_path / "f.webm", container="webm", codec="libvpx-vp9",
                           seconds=1.2, size=(160, 120)), models.VIDEO)]
    for container, codec, name in (("ogg", "libopus", "g.ogg"), ("ipod", "aac", "h.m4a"),
                                   ("mp3", "libmp3lame", "i.mp3")):
        samples.sound(tmp_path / name, container, codec)
        made.append((tmp_path / name, models.AUDIO))
    kinds = set()
    for seed, (source, kind) in enumerate(made):
        for data in damaged(source.read_bytes(), seed, 30):
            copy = tmp_path / f"damaged{source.suffix}"
            copy.write_bytes(data)
            result = run(tmp_path, copy)
            assert result.kind in (kind, models.FILE)
            kinds.add((source.suffix, result.kind))
    assert len(kinds) > len(made)  # some copies still decode, some do not


def test_a_webm_cut_anywhere_in_its_headers_is_a_file(tmp_path: Path) -> None:
    # FFmpeg reports some of these cuts as EIO: an error of the bytes, not of the disk.
    whole = samples.video(tmp_path / "v.webm", container="webm", codec="libvpx-vp9",
                          seconds=0.5, size=(160, 120)).read_bytes()
    source = tmp_path / "cut.webm"
    for cut in range(4, 400):
        source.write_bytes(whole[:cut])
        assert run(tmp_path, source).kind == models.FILE, cut


# Recordings without metadata

LOCATION = "+52.3667+004.9000/"  # ISO 6709, as phones write it
APPLE = "com.apple.quicktime."


def tags_of(path: Path) -> dict[str, str]:
    """Every container and track tag FFmpeg reads back."""
    with av.open(str(path)) as container:
        found = dict(container.metadata)
        for stream in container.streams:
            found.update(stream.metadata)
    return found


def packets_of(path: Path) -> dict[str, list[bytes]]:
    """The packets of each kind of track, in order."""
    found: dict[str, list[bytes]] = {}
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.size:
                found.setdefault(packet.stream.type, []).append(bytes(packet))
    return found


def boxes(data: bytes) -> list[bytes]:
    """The top-level boxes of an MP4 or QuickTime file, in order."""
    kinds, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        kinds.append(kind)
        pos += size
    return kinds


def again(tmp_path: Path, source: Path) -> Result:
    """process() on a sanitized copy, in a work directory of its own."""
    workdir = tmp_path / "again"
    workdir.mkdir(exist_ok=True)
    return process(source, workdir)


def assert_same_recording(tmp_path: Path, result: Result, source: Path) -> None:
    """The sanitized copy plays as the source: the same packets, kind, type, size as
    displayed and duration."""
    assert result.sanitized is not None
    assert packets_of(result.sanitized) == packets_of(source)  # copied, not re-encoded
    copy = again(tmp_path, result.sanitized)
    assert (copy.content_type, copy.kind, copy.width, copy.height) == (
        result.content_type, result.kind, result.width, result.height)
    assert abs(copy.duration_ms - result.duration_ms) <= 25


@pytest.mark.parametrize(("name", "container", "codec", "audio", "tags", "options"), [
    ("iphone.mp4", "mp4", "", "aac",  # keys in moov/meta, as an iPhone writes them
     {f"{APPLE}location.ISO6709": LOCATION, f"{APPLE}make": "PhoneMaker",
      f"{APPLE}creationdate": "2026-11-30T10:00:00+0100"}, {"movflags": "use_metadata_tags"}),
    ("loci.mp4", "mp4", "", "aac",  # a 3GPP loci box in moov/udta
     {"location": LOCATION, "creation_time": "2026-11-30T10:00:00Z"}, None),
    ("clip.mov", "mov", "", "aac",  # ©xyz in moov/udta (Android writes it in MP4s too)
     {"location": LOCATION, "title": "at home"}, None),
    ("clip.mkv", "matroska", "", "aac", {"location": LOCATION, "title": "at home"}, None),
    ("clip.webm", "webm", "libvpx-vp9", "libopus", {"location": LOCATION}, None),
], ids=["iphone-mp4", "loci-mp4", "quicktime", "matroska", "webm"])
def test_a_video_is_served_remuxed_without_its_location(
        tmp_path: Path, name: str, container: str, codec: str, audio: str,
        tags: dict[str, str], options: dict[str, str] | None) -> None:
    source = samples.video(tmp_path / name, container=container, codec=codec, audio=audio,
                           seconds=1.5, size=(320, 240), tags=tags, options=options)
    assert LOCATION in tags_of(source).values()
    result = run(tmp_path, source)
    assert result.kind == models.VIDEO and result.sanitized is not None
    assert LOCATION not in tags_of(result.sanitized).values()
    assert not {"title", "creation_time", f"{APPLE}make"} & set(tags_of(result.sanitized))
    data = result.sanitized.read_bytes()
    assert b"52.3667" not in data and b"PhoneMaker" not in data and b"at home" not in data
    assert set(packets_of(result.sanitized)) == {"video", "audio"}
    assert_same_recording(tmp_path, result, source)
    if container in ("mp4", "mov"):  # faststart: the index before the media data
        assert boxes(data).index(b"moov") < boxes(data).index(b"mdat")
        assert boxes(source.read_bytes()).index(b"moov") > boxes(
            source.read_bytes()).index(b"mdat")


@pytest.mark.parametrize("container", ["mp4", "mov", "matroska"])
def test_a_rotated_video_still_plays_upright_when_remuxed(tmp_path: Path,
                                                          container: str) -> None:
    source = samples.video(tmp_path / "v", container=container, rotation=-90,
                           size=(320, 240), picture=samples.quadrants(320, 240),
                           seconds=0.5, tags={"location": LOCATION})
    result = run(tmp_path, source)
    assert result.sanitized is not None
    with av.open(str(result.sanitized)) as clean:
        assert next(clean.decode(video=0)).rotation == -90
    copy = again(tmp_path, result.sanitized)
    assert (copy.width, copy.height) == (240, 320)
    with Image.open(copy.renditions[0].path) as poster:
        assert all(map(near, corners(poster), (BLUE, RED, WHITE, GREEN)))


def test_hevc_keeps_the_hvc1_sample_entry_apple_players_need(tmp_path: Path) -> None:
    # FFmpeg writes hev1 unless told otherwise; Safari and QuickTime play only hvc1.
    if "libx265" not in av.codecs_available:
        pytest.skip("no HEVC encoder in this PyAV")
    source = samples.video(tmp_path / "v.mov", container="mov", codec="libx265",
                           codec_tag="hvc1", seconds=0.4, size=(160, 120),
                           tags={"location": LOCATION})
    result = run(tmp_path, source)
    assert (result.content_type, result.kind) == ("video/quicktime", models.VIDEO)
    assert result.sanitized is not None
    with av.open(str(result.sanitized)) as clean:
        assert clean.streams.video[0].codec_context.codec_tag == "hvc1"
    assert LOCATION not in tags_of(result.sanitized).values()


def test_data_tracks_and_attachments_are_not_copied(tmp_path: Path) -> None:
    # A dash cam's GPS track; a Matroska attachment (a photo with its EXIF).
    source = samples.video(tmp_path / "v.mp4", seconds=0.4, size=(160, 120))
    with av.open(str(source)) as original, av.open(str(tmp_path / "gps.mp4"), "w",
                                                    format="mp4") as output:
        video = output.add_stream_from_template(original.streams.video[0])
        track = output.add_data_stream("bin_data")
        for index, packet in enumerate(original.demux(original.streams.video[0])):
            if packet.size:
                packet.stream = video
                output.mux(packet)
                fix = av.Packet(f"GPS {LOCATION} {index}".encode())
                fix.stream, fix.time_base = track, Fraction(1, 25)
                fix.pts = fix.dts = index
                output.mux(fix)
    photo = samples.jpeg(tmp_path / "p.jpg", (64, 48)).read_bytes()
    mkv = samples.video(tmp_path / "v.mkv", container="matroska", seconds=0.4,
                        size=(160, 120))
    with av.open(str(mkv)) as original, av.open(str(tmp_path / "photo.mkv"), "w",
                                                 format="matroska") as output:
        video = output.add_stream_from_template(original.streams.video[0])
        output.add_attachment("home.jpg", "image/jpeg", photo)
        for packet in original.demux(original.streams.video[0]):
            if packet.size:
                packet.stream = video
                output.mux(packet)
    for name in ("gps.mp4", "photo.mkv"):
        result = run(tmp_path, tmp_path / name)
        assert result.kind == models.VIDEO and result.sanitized is not None, name
        with av.open(str(result.sanitized)) as clean:
            assert [s.type for s in clean.streams] == ["video"], name
        data = result.sanitized.read_bytes()
        assert b"52.3667" not in data and b"PhoneMaker" not in data, name


@pytest.mark.parametrize(("container", "codec", "name", "content_type"), [
    ("ogg", "libopus", "a.ogg", "audio/ogg"),
    ("ipod", "aac", "a.m4a", "audio/mp4"),
    ("mp3", "libmp3lame", "a.mp3", "audio/mpeg"),
    ("webm", "libopus", "a.webm", "audio/webm"),
    ("flac", "flac", "a.flac", "audio/flac"),
    ("wav", "pcm_s16le", "a.wav", "audio/wav"),
    ("aiff", "pcm_s16be", "a.aiff", "audio/aiff"),
    ("caf", "pcm_s16le", "a.caf", "audio/x-caf"),
])
def test_sound_is_served_remuxed_without_its_tags(tmp_path: Path, container: str,
                                                  codec: str, name: str,
                                                  content_type: str) -> None:
    source = tmp_path / name
    samples.sound(source, container, codec, seconds=1.0,
                  tags={"title": "Voice memo at home", "comment": LOCATION})
    assert b"at home" in source.read_bytes()
    result = run(tmp_path, source)
    assert (result.content_type, result.kind) == (content_type, models.AUDIO)
    assert result.sanitized is not None
    data = result.sanitized.read_bytes()
    assert b"at home" not in data and b"52.3667" not in data
    assert not {"title", "comment", "TITLE", "COMMENT"} & set(tags_of(result.sanitized))
    assert_same_recording(tmp_path, result, source)


def failing_remux(*args: object) -> int:
    raise ValueError("the muxer refuses it")


@pytest.mark.parametrize(("name", "container", "tags", "options"), [
    ("iphone.mp4", "mp4", {f"{APPLE}location.ISO6709": LOCATION},
     {"movflags": "use_metadata_tags"}),
    ("loci.mp4", "mp4", {"location": LOCATION}, None),
    ("clip.mov", "mov", {"location": LOCATION}, None),
    ("clip.mkv", "matroska", {"location": LOCATION, "title": "at home"}, None),
], ids=["iphone-mp4", "loci-mp4", "quicktime", "matroska"])
def test_when_the_remux_fails_the_metadata_is_padded_over_in_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, container: str,
        tags: dict[str, str], options: dict[str, str] | None) -> None:
    source = samples.video(tmp_path / name, container=container, rotation=90, seconds=0.5,
                           size=(320, 240), audio="aac", tags=tags, options=options)
    monkeypatch.setattr(remux, "remux", failing_remux)
    result = run(tmp_path, source)
    assert result.kind == models.VIDEO and result.sanitized is not None
    assert result.sanitized.stat().st_size == source.stat().st_size  # offsets unchanged
    assert LOCATION not in tags_of(result.sanitized).values()
    assert b"52.3667" not in result.sanitized.read_bytes()
    assert (result.width, result.height) == (240, 320)
    assert_same_recording(tmp_path, result, source)


def test_a_live_webm_is_padded_over_in_place_too(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    made = samples.video(tmp_path / "v.webm", container="webm", codec="libvpx-vp9",
                         audio="libopus", seconds=1.2, size=(160, 120),
                         tags={"location": LOCATION, "title": "at home"})
    source = tmp_path / "live.webm"
    source.write_bytes(samples.unknown_sizes(made.read_bytes()))
    monkeypatch.setattr(remux, "remux", failing_remux)
    result = run(tmp_path, source)
    assert result.kind == models.VIDEO and result.sanitized is not None
    assert result.sanitized.stat().st_size == source.stat().st_size
    assert not {"title", "LOCATION"} & set(tags_of(result.sanitized))
    assert b"52.3667" not in result.sanitized.read_bytes()
    assert_same_recording(tmp_path, result, source)


@pytest.mark.parametrize("container", ["mp4", "matroska"])
def test_a_recording_cut_anywhere_in_its_index_never_keeps_its_location(
        tmp_path: Path, container: str) -> None:
    # The index first (faststart; Matroska's tags come before its clusters): each cut
    # leaves some of it, which FFmpeg reads, or not, or the in-place walk pads over.
    whole = samples.video(tmp_path / "v", container=container, seconds=0.3, size=(64, 48),
                          tags={f"{APPLE}location.ISO6709": LOCATION, "title": "at home"},
                          options={"movflags": "use_metadata_tags+faststart"}
                          if container == "mp4" else None).read_bytes()
    index = whole.index(b"52.3667")
    source = tmp_path / "cut"
    kinds = set()
    for cut in range(index - 400, index + 30, 3):
        source.write_bytes(whole[:cut])
        result = run(tmp_path, source)
        kinds.add(result.kind)
        if result.sanitized is not None:
            data = result.sanitized.read_bytes()
            assert b"52.3667" not in data and b"at home" not in data, cut
        else:
            assert b"52.3667" not in source.read_bytes(), cut
    assert models.FILE in kinds


def test_a_video_its_format_cannot_hold_is_padded_over_in_place(tmp_path: Path) -> None:
    # VP9 in a file that says it is 3GPP: FFmpeg reads it, its 3GPP muxer refuses VP9.
    made = samples.video(tmp_path / "v.mp4", codec="libvpx-vp9", seconds=0.5,
                         size=(160, 120), tags={"location": LOCATION})
    data = made.read_bytes()
    source = tmp_path / "v.3gp"
    source.write_bytes(data[:8] + b"3gp4" + data[12:])
    result = run(tmp_path, source)
    assert (result.content_type, result.kind) == ("video/3gpp", models.VIDEO)
    assert result.sanitized is not None
    assert result.sanitized.stat().st_size == source.stat().st_size
    assert LOCATION not in tags_of(result.sanitized).values()
    assert_same_recording(tmp_path, result, source)


def test_sound_that_cannot_be_remuxed_is_served_as_uploaded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "a.mp3"
    samples.sound(source, "mp3", "libmp3lame", tags={"title": "Voice memo"})
    monkeypatch.setattr(remux, "remux", failing_remux)
    result = run(tmp_path, source)
    assert (result.content_type, result.kind) == ("audio/mpeg", models.AUDIO)
    assert result.sanitized is None
    assert not (tmp_path / "work" / "sanitized").exists()


# The environment


def test_a_missing_workdir_raises(tmp_path: Path) -> None:
    source = samples.jpeg(tmp_path / "p.jpg")
    with pytest.raises(FileNotFoundError):
        process(source, tmp_path / "missing")


def test_a_missing_source_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        process(tmp_path / "missing", tmp_path)


def test_thumbnails_are_webp_that_browsers_decode(tmp_path: Path) -> None:
    result = run(tmp_path, samples.jpeg(tmp_path / "p.jpg", (900, 600)))
    for rendition in result.renditions:
        data = rendition.path.read_bytes()
        assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
        with Image.open(io.BytesIO(data)) as thumbnail:
            thumbnail.load()
