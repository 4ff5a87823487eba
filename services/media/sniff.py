"""What a file is, from its bytes alone (never from its name or declared type).

`sniff` reads the file's first bytes, a few more where a format says (after an ID3
tag, at a second audio frame, a ZIP's last 64 KiB), and for text the whole file,
streamed; it names the file's content type. The types CAAS processes further are
recognised by this module's own signatures, so that puremagic's guesses never decide
them: pictures it renders (JPEG, PNG, GIF, WebP: `Sniffed.picture` is the Pillow
format to decode with), audio and video containers FFmpeg opens (`Sniffed.demuxer`,
the only demuxer it may use: never a probe, which could pick a playlist format that
opens other files or URLs), executables, PDF, ZIP and markup a browser would run
(HTML, SVG, XML). Everything else is puremagic's best match when it rests on a
signature of at least three bytes, then `text/plain` for UTF-8 text, then puremagic's
weaker matches, then `application/octet-stream`.

A sniffed picture or container type is a claim about the first bytes only: whether the
rest decodes is for the decoder to find out (see processing.py).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import puremagic

OCTET_STREAM = "application/octet-stream"
HEAD = 8192  # bytes every decision below looks at (text: the whole file)
TEXT_CHUNK = 1 << 20
# C0 controls other than tab, line feed, vertical tab, form feed, carriage return and
# escape (terminal colours), and DEL: bytes that make UTF-8 "text" binary.
_CONTROL = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_SPACE = b"\t\n\x0c\r "
# The tags after which a browser takes bytes for HTML (WHATWG MIME sniffing, 7.1),
# each followed by a space or ">".
_HTML_TAGS = (b"<!doctype html", b"<html", b"<head", b"<script", b"<iframe", b"<h1",
              b"<div", b"<font", b"<table", b"<a", b"<style", b"<title", b"<b", b"<body",
              b"<br", b"<p", b"<!--")
_SVG_ROOT = re.compile(rb"<svg[\s>/]")


@dataclass(frozen=True, slots=True)
class Sniffed:
    """A file's type, and how to decode it if CAAS processes that type.

    For audio/video containers `content_type` is the container's usual type; the
    type to report once the streams are known is `video_type` when it holds a
    picture track and `audio_type` when it holds only sound (either empty: keep
    `content_type`).
    """

    content_type: str
    picture: str = ""  # Pillow format to decode with: JPEG, PNG, GIF or WEBP
    demuxer: str = ""  # FFmpeg demuxer to open it with
    video_type: str = ""
    audio_type: str = ""


def sniff(path: Path) -> Sniffed:
    """The type of the file at `path` (see the module's docstring). Raises OSError
    only when the file cannot be read."""
    with path.open("rb") as f:
        head = f.read(HEAD)
        if not head:
            return Sniffed(OCTET_STREAM)
        known = _signature(head, f)
        if known is not None:
            return known
        markup = _markup(head)
        if markup:
            return Sniffed(markup)
        f.seek(0)
        guesses = _puremagic(f)
        strong = [mime for mime, confidence in guesses if confidence >= 0.3]  # >= 3 bytes
        if strong:
            return Sniffed(strong[0])
        if _is_text(f):
            return Sniffed("text/plain")
        return Sniffed(guesses[0][0] if guesses else OCTET_STREAM)


def _signature(head: bytes, f: BinaryIO) -> Sniffed | None:
    """The types this module names by their own signatures, else None."""
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image/jpeg", picture="JPEG")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image/png", picture="PNG")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("image/gif", picture="GIF")
    if head[:4] == b"RIFF":
        return {b"WEBP": Sniffed("image/webp", picture="WEBP"),
                b"WAVE": Sniffed("audio/wav", demuxer="wav"),
                b"AVI ": Sniffed("video/x-msvideo", demuxer="avi")}.get(head[8:12])
    if head[4:8] == b"ftyp":
        return _iso_media(head)
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska or WebM (its DocType)
        if b"webm" in head[:64]:
            return Sniffed("video/webm", demuxer="matroska", audio_type="audio/webm")
        return Sniffed("video/x-matroska", demuxer="matroska", audio_type="audio/x-matroska")
    if head.startswith(b"OggS"):
        return Sniffed("audio/ogg", demuxer="ogg", video_type="video/ogg")
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return Sniffed("audio/aiff", demuxer="aiff")
    if head.startswith(b"#!AMR\n"):
        return Sniffed("audio/amr", demuxer="amr")
    if head.startswith(b"caff"):
        return Sniffed("audio/x-caf", demuxer="caf")
    if head.startswith(b"fLaC"):
        return Sniffed("audio/flac", demuxer="flac")
    if head.startswith(b"ID3") and len(head) >= 10:
        return _after_id3(head, f)
    mpeg = _mpeg_audio(f, 0)
    if mpeg:
        return Sniffed("audio/aac" if mpeg == "aac" else "audio/mpeg", demuxer=mpeg)
    if head.startswith(b"\x7fELF"):
        return Sniffed("application/x-executable")
    if head[:4] in (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe",
                    b"\xcf\xfa\xed\xfe"):
        return Sniffed("application/x-mach-binary")
    if head.startswith(b"MZ") and len(head) >= 64:
        pe = int.from_bytes(head[60:64], "little")
        if head[pe:pe + 4] == b"PE\0\0":
            return Sniffed("application/vnd.microsoft.portable-executable")
    if head.startswith(b"%PDF-"):
        return Sniffed("application/pdf")
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return Sniffed(_zip_type(head, f))
    return None


def _iso_media(head: bytes) -> Sniffed:
    """An ISO base media file (MP4, QuickTime, 3GPP, HEIF/AVIF), by its brands."""
    major = head[8:12]
    box = int.from_bytes(head[:4], "big")
    brands = {head[i:i + 4] for i in range(16, min(box, len(head)) - 3, 4)} | {major}
    if major in (b"avif", b"avis") or (major in (b"mif1", b"msf1") and b"avif" in brands):
        return Sniffed("image/avif")
    if major in (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"):
        return Sniffed("image/heic")
    if major in (b"mif1", b"msf1"):
        return Sniffed("image/heif")
    if major == b"crx ":
        return Sniffed("image/x-canon-cr3")
    if major == b"qt  ":
        return Sniffed("video/quicktime", demuxer="mov")
    if major in (b"M4A ", b"M4B ", b"M4P "):
        return Sniffed("audio/mp4", demuxer="mov", video_type="video/mp4")
    if major.startswith(b"3g2"):
        return Sniffed("video/3gpp2", demuxer="mov", audio_type="audio/3gpp2")
    if major.startswith(b"3g"):
        return Sniffed("video/3gpp", demuxer="mov", audio_type="audio/3gpp")
    return Sniffed("video/mp4", demuxer="mov", audio_type="audio/mp4")


# MPEG audio bit rates (kbit/s) by (MPEG-1, layer), for bit rate indexes 1 to 14, and
# sampling rates by version bits (3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5).
_BITRATES = {
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_audio(f: BinaryIO, at: int) -> str:
    """The demuxer for a raw audio stream at offset `at`: `mp3` (MPEG audio layers 1
    to 3) or `aac` (ADTS) when two frame headers follow each other there, else "". (One
    header alone is too weak a signature: a UTF-16 text's byte order mark passes.)"""
    f.seek(at)
    kind, length = _audio_frame(f.read(6))
    if not kind or length < 7:
        return ""
    f.seek(at + length)
    return kind if _audio_frame(f.read(6))[0] == kind else ""


def _audio_frame(h: bytes) -> tuple[str, int]:
    """("mp3" or "aac", the frame's length) when `h` is an audio frame header."""
    if len(h) < 6 or h[0] != 0xFF or h[1] & 0xE0 != 0xE0:
        return "", 0
    if (h[1] >> 1) & 3 == 0:  # layer "0": ADTS, whose sync is 12 bits
        if h[1] & 0xF6 != 0xF0 or (h[2] >> 2) & 0xF >= 13:
            return "", 0
        return "aac", ((h[3] & 3) << 11) | (h[4] << 3) | (h[5] >> 5)
    version, index, rate_index = (h[1] >> 3) & 3, h[2] >> 4, (h[2] >> 2) & 3
    if version == 1 or index in (0, 15) or rate_index == 3:
        return "", 0
    layer = 4 - ((h[1] >> 1) & 3)
    bitrate = _BITRATES[version == 3, layer][index - 1] * 1000
    rate = _RATES[version][rate_index]
    padding = (h[2] >> 1) & 1
    if layer == 1:
        return "mp3", (12 * bitrate // rate + padding) * 4
    return "mp3", (72 if layer == 3 and version != 3 else 144) * bitrate // rate + padding


def _after_id3(head: bytes, f: BinaryIO) -> Sniffed:
    """An ID3 tag leads MP3 files, and sometimes FLAC or AAC: what follows it."""
    size = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10]))
    if head[5] & 0x10:  # a footer follows the tag
        size += 10
    f.seek(size)
    if f.read(4) == b"fLaC":
        return Sniffed("audio/flac", demuxer="flac")
    if _mpeg_audio(f, size) == "aac":
        return Sniffed("audio/aac", demuxer="aac")
    return Sniffed("audio/mpeg", demuxer="mp3")


def _zip_type(head: bytes, f: BinaryIO) -> str:
    """A ZIP archive, or the document format built on one: ODF and EPUB store their
    type first (a `mimetype` entry), Office Open XML is told by its main part's name
    in the central directory (at the end)."""
    name_length = int.from_bytes(head[26:28], "little")
    extra_length = int.from_bytes(head[28:30], "little")
    if head[30:30 + name_length] == b"mimetype" and head[8:10] == b"\0\0":  # stored
        start = 30 + name_length + extra_length
        declared = head[start:start + int.from_bytes(head[18:22], "little")]
        if re.fullmatch(rb"application/[\w.+-]{1,100}", declared):
            return declared.decode()
    f.seek(0, 2)
    f.seek(max(0, f.tell() - 65536))
    tail = f.read()
    for part, mime in ((b"word/document.xml", "wordprocessingml.document"),
                       (b"xl/workbook.xml", "spreadsheetml.sheet"),
                       (b"ppt/presentation.xml", "presentationml.presentation")):
        if part in tail:
            return f"application/vnd.openxmlformats-officedocument.{mime}"
    return "application/zip"


def _markup(head: bytes) -> str:
    """SVG, HTML or XML when the bytes begin as a browser would take them for it."""
    text = head.removeprefix(codecs.BOM_UTF8).lstrip(_SPACE)[:4096].lower()
    if not text.startswith(b"<"):
        return ""
    if text.startswith((b"<svg", b"<?xml", b"<!--", b"<!doctype svg")) and _SVG_ROOT.search(text):
        return "image/svg+xml"
    for tag in _HTML_TAGS:
        if text.startswith(tag) and text[len(tag):len(tag) + 1] in (b" ", b">"):
            return "text/html"
    if text.startswith(b"<?xml"):
        return "application/xhtml+xml" if b"<html" in text else "application/xml"
    return ""


def _puremagic(f: BinaryIO) -> list[tuple[str, float]]:
    """puremagic's matches with a content type, best first (it reads head and tail)."""
    try:
        matches = puremagic.magic_stream(f)
    except OSError:
        raise
    except Exception:  # PureError (no match), or its parser tripping on odd bytes
        return []
    return [(m.mime_type, m.confidence) for m in matches if m.mime_type]


def _is_text(f: BinaryIO) -> bool:
    """Whether the whole file is UTF-8 without binary control bytes (streamed)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    f.seek(0)
    try:
        while chunk := f.read(TEXT_CHUNK):
            if _CONTROL.search(chunk):
                return False
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True
