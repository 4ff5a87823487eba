"""Pictures decoded and made small: WebP thumbnails, a blurhash, the orientation applied.

`decode(source, fmt, orientation, max_pixels)` decodes a picture once, JPEG at the
smallest scale that still covers the largest thumbnail, and makes its thumbnails;
`make_thumbnails` does the same for a picture already decoded (a video's poster).
Thumbnails fit the boxes of SIZES, are never larger than the picture, carry no
metadata but a small RGB ICC profile, and are turned as EXIF `orientation` says.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import blurhash  # type: ignore[import-untyped]
from PIL import Image

WEBP = "image/webp"
WEBP_QUALITY = 80
# Thumbnails, smallest first: name, the box it fits in, libwebp's method (0 fastest ..
# 6 smallest). Method 4 makes the small one a quarter smaller for about 1 ms; on the
# larger ones it saves 2-5 % for three times the encoding time (bench/media_thumbnails.py).
SIZES = (("small", 160, 4), ("medium", 480, 1), ("large", 1280, 1))
BLURHASH_BOX = 32  # the blurhash is computed from the small thumbnail shrunk to this
MAX_ICC = 65536  # larger ICC profiles are not copied into thumbnails


@dataclass(frozen=True, slots=True)
class Thumbnail:
    """A thumbnail in memory: `size` is small, medium or large."""

    size: str
    width: int
    height: int
    data: bytes  # WebP


@dataclass(frozen=True, slots=True)
class Decoded:
    """A picture's dimensions as displayed, its thumbnails (smallest first), blurhash."""

    width: int  # as displayed
    height: int
    thumbnails: tuple[Thumbnail, ...]
    blurhash: str


def decode(source: Path, fmt: str, orientation: int, max_pixels: int) -> Decoded | None:
    """Decode the first frame of the picture at `source`, at a reduced scale when the
    format allows (JPEG), and make its thumbnails turned by EXIF `orientation` (1 to 8).
    None when it is not a picture of Pillow format `fmt` or has more than `max_pixels`
    (then it is never decoded). Pillow's errors on bad bytes propagate."""
    with Image.open(source, formats=[fmt]) as im:
        if im.format not in (fmt, "MPO" if fmt == "JPEG" else fmt):
            return None
        width, height = im.size
        if width < 1 or height < 1 or width * height > max_pixels:
            return None
        targets = thumbnail_sizes(width, height)
        if fmt == "JPEG":
            im.draft("RGB", targets[-1][1])
        im.load()
        thumbnails, placeholder = make_thumbnails(im, targets, orientation)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return Decoded(width, height, thumbnails, placeholder)


def thumbnail_sizes(width: int, height: int) -> list[tuple[str, tuple[int, int], int]]:
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


def make_thumbnails(image: Image.Image, sizes: Sequence[tuple[str, tuple[int, int], int]],
                    orientation: int) -> tuple[tuple[Thumbnail, ...], str]:
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
    thumbnails = tuple(Thumbnail(name, *shown.size, _encode_webp(shown, method, icc))
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
