"""Recordings without the metadata that could give their author away: phones write
where and when a video was made, and on what, into its container.

`remux(source, demuxer, muxer, target)` copies the picture and sound tracks into a new
container of the same format (FFmpeg's stream copy: packets are copied, nothing is
re-encoded); `MUXERS` names that format for each sniffed type. What the copy keeps of
each track (not cover art): its codec parameters, display matrix (rotation) and, in
MP4 and QuickTime, its sample entry's name (`hvc1`, which Apple's players need, rather
than FFmpeg's `hev1`), and its language. What goes: the container's and the tracks'
metadata (QuickTime/MP4 `udta` and `meta`: ©xyz and ISO 6709 locations, make, model,
software, creation dates; Matroska tags, title, date, attachments; ID3, Vorbis
comments, RIFF INFO), chapters, subtitles and timed metadata or data tracks (a dash
cam's or drone's GPS track). MP4 and QuickTime copies put their index first
(`movflags=+faststart`) and Matroska/WebM copies their cues, so that a browser plays
and seeks before it has the whole file. The muxer names itself (`Lavf…`) as encoder.
Untouched: what the coded frames themselves carry (H.264 SEI user data, EXIF in
Motion JPEG frames).

When the remux fails (FFmpeg cannot read the file, or its muxer refuses a codec, a
sample entry name or the timestamps), `IN_PLACE` has the fallback for the formats that
carry locations, QuickTime/MP4 and Matroska/WebM: a sanitize.Plan that turns every box
or element not known to be needed for playback into padding of the same length
(`free` boxes, EBML Void elements, zero-filled), so that every offset in the file stays
valid. It does not remove tracks (a timed GPS track stays) nor move the index. A box or
element whose header is broken ends the copy at the top level, and is padded over
inside a parent.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable
from pathlib import Path

import av
from av.container import InputContainer, OutputContainer
from av.stream import Disposition, Stream

from services.media.recordings import AV_MAX_ERRORS, open_recording
from services.media.sanitize import Piece, Plan

# The muxer for each type sniffing finds (the container's usual type); those not here
# (AMR, which has no tags; AVI) are served as uploaded.
MUXERS = {"video/mp4": "mp4", "audio/mp4": "ipod", "video/quicktime": "mov",
          "video/3gpp": "3gp", "video/3gpp2": "3g2", "video/webm": "webm",
          "video/x-matroska": "matroska", "audio/ogg": "ogg", "audio/mpeg": "mp3",
          "audio/flac": "flac", "audio/wav": "wav", "audio/aiff": "aiff",
          "audio/x-caf": "caf", "audio/aac": "adts"}
_ISO_MEDIA = frozenset({"mp4", "ipod", "mov", "3gp", "3g2"})


def remux(source: Path, demuxer: str, muxer: str, target: Path) -> int:
    """Copy the picture and sound tracks of the container at `source` (read with
    `demuxer` only) into a new `muxer` container at `target` (replaced); the number of
    packets copied. Raises av.FFmpegError or ValueError when FFmpeg cannot read or
    write it, or finds no packet (`target` is then left half-written), OSError when
    the disk fails."""
    if muxer in _ISO_MEDIA:
        options = {"movflags": "+faststart"}  # the index (moov) first
    elif muxer in ("webm", "matroska"):
        options = {"cues_to_front": "1"}
    else:
        options = {}
    with open_recording(source, demuxer) as container, av.open(
            f"file:{target}", "w", format=muxer, container_options=options) as output:
        copies: dict[int, Stream] = {}
        for stream in container.streams:
            if (stream.type in ("video", "audio")
                    and Disposition.attached_pic not in stream.disposition):
                copy = output.add_stream_from_template(stream, opaque=True)
                if muxer in _ISO_MEDIA:
                    copy.codec_context.codec_tag = stream.codec_context.codec_tag
                if stream.language:
                    copy.metadata["language"] = stream.language
                copies[stream.index] = copy
        if not copies:
            raise ValueError("no picture or sound track")
        count = _copy_packets(container, output, copies)
    if count == 0:  # the bytes as they are (broken) make a truer copy than no bytes
        raise ValueError("no packet to copy")
    return count


def _copy_packets(container: InputContainer, output: OutputContainer,
                  copies: dict[int, Stream]) -> int:
    """Mux the packets of the tracks in `copies` (by input index) into `output`,
    skipping up to AV_MAX_ERRORS that the muxer refuses (timestamps out of order)."""
    errors = count = 0
    for packet in container.demux([container.streams[index] for index in copies]):
        if packet.size == 0:  # the demuxer's end-of-stream marker
            continue
        packet.stream = copies[packet.stream.index]
        try:
            output.mux(packet)
        except av.error.ArgumentError:
            errors += 1
            if errors > AV_MAX_ERRORS:
                raise
            continue
        count += 1
    return count


# In place: ISO base media (MP4, QuickTime, 3GPP) boxes, by parent ("" for the top
# level). Those of _BOXES_IN are walked into.
_BOXES_KEPT = {
    b"": frozenset({b"ftyp", b"mdat", b"moov", b"moof", b"mfra", b"sidx", b"ssix", b"styp",
                    b"prft", b"pdin"}),
    b"moov": frozenset({b"mvhd", b"trak", b"mvex", b"iods"}),
    b"trak": frozenset({b"tkhd", b"mdia", b"edts", b"tref", b"tapt", b"load", b"imap",
                        b"matt", b"clip", b"txas"}),
}
_BOXES_IN = frozenset({b"moov", b"trak"})


def _plan_iso(data: mmap.mmap) -> Plan:
    """Keep ftyp, media data, fragments and the index (moov) but for its and its
    tracks' user data, metadata and unknown boxes, which become `free` boxes."""
    pieces: list[Piece] = []
    changed = _walk_boxes(data, 0, len(data), b"", pieces)
    return Plan(tuple(pieces), 1, changed)


def _walk_boxes(data: mmap.mmap, pos: int, end: int, parent: bytes,
                pieces: list[Piece]) -> bool:
    """Plan the boxes in data[pos:end], children of `parent`; whether any changed."""
    changed = False
    while pos < end:
        size, kind, header = 0, b"", 8
        if pos + 8 <= end:
            size, kind = struct.unpack(">I4s", data[pos:pos + 8])
            if size == 1 and pos + 16 <= end:
                size, header = int.from_bytes(data[pos + 8:pos + 16], "big"), 16
            elif size == 0:
                size = end - pos  # to the end of its parent (or of the file)
        if size < header:  # broken
            pieces.extend(_free(end - pos) if parent else ())
            return True
        box_end = pos + size
        if kind in _BOXES_KEPT[parent] and kind in _BOXES_IN:
            _keep(pieces, pos, pos + header)
            changed = _walk_boxes(data, pos + header, min(box_end, end), kind,
                                  pieces) or changed
        elif kind in _BOXES_KEPT[parent] or size == header:  # needed, or empty
            _keep(pieces, pos, min(box_end, end))
        elif box_end <= end:
            pieces.extend(_free(size))
            changed = True
        else:  # cut short
            pieces.extend(_free(end - pos) if parent else ())
            return True
        pos = box_end
    return changed


def _free(length: int) -> list[Piece]:
    """A zero-filled `free` box of `length` bytes (just zeros when under 8)."""
    if length < 8:
        return [length]
    if length < 1 << 32:
        return [struct.pack(">I4s", length, b"free"), length - 8]
    return [struct.pack(">I4sQ", 1, b"free", length), length - 16]


# In place: Matroska and WebM elements, by parent (0 for the top level). Those of
# _ELEMENTS_IN are walked into.
_EBML, _SEGMENT, _INFO, _CLUSTER, _VOID, _CRC32 = (0x1A45DFA3, 0x18538067, 0x1549A966,
                                                   0x1F43B675, 0xEC, 0xBF)
_ELEMENTS_KEPT = {
    0: frozenset({_EBML, _SEGMENT, _VOID}),
    # SeekHead, Info, Tracks, Cues, Cluster
    _SEGMENT: frozenset({0x114D9B74, _INFO, 0x1654AE6B, 0x1C53BB6B, _CLUSTER, _VOID,
                         _CRC32}),
    # TimestampScale, Duration, MuxingApp, WritingApp, Segment, Prev and Next UUID
    _INFO: frozenset({0x2AD7B1, 0x4489, 0x4D80, 0x5741, 0x73A4, 0x3CB923, 0x3EB923,
                      _VOID, _CRC32}),
}
_ELEMENTS_IN = frozenset({_SEGMENT, _INFO})
# What a Cluster of unknown size (a live recording's) holds: Timestamp, Position,
# PrevSize, SimpleBlock, BlockGroup, EncryptedBlock, SilentTracks.
_CLUSTER_CHILDREN = frozenset({0xE7, 0xA7, 0xAB, 0xA3, 0xA0, 0xAF, 0x5854, _VOID, _CRC32})


def _plan_matroska(data: mmap.mmap) -> Plan:
    """Keep the EBML header, seek index, tracks, cues, clusters and the segment info
    needed to play; tags, attachments, chapters, the title, date and file name and
    unknown elements become Void elements."""
    pieces: list[Piece] = []
    changed = _walk_elements(data, 0, len(data), 0, pieces)
    return Plan(tuple(pieces), 1, changed)


def _walk_elements(data: mmap.mmap, pos: int, end: int, parent: int,
                   pieces: list[Piece]) -> bool:
    """Plan the elements in data[pos:end], children of `parent`; whether any changed."""
    changed = False
    while pos < end:
        ident, size, header = _element_head(data, pos, end)
        if size < 0 and ident == _SEGMENT:  # unknown size: to the end
            size = end - pos - header
        elif size < 0 and ident == _CLUSTER:
            size = _cluster_end(data, pos + header, end) - pos - header
        if size < 0:  # broken
            pieces.extend(_void(end - pos) if parent else ())
            return True
        element_end = pos + header + size
        if ident in _ELEMENTS_KEPT[parent] and ident in _ELEMENTS_IN:
            _keep(pieces, pos, pos + header)
            changed = _walk_elements(data, pos + header, min(element_end, end), ident,
                                     pieces) or changed
        elif ident in _ELEMENTS_KEPT[parent] or size == 0:  # needed, or empty
            _keep(pieces, pos, min(element_end, end))
        elif element_end <= end:
            pieces.extend(_void(element_end - pos))
            changed = True
        else:  # cut short
            pieces.extend(_void(end - pos) if parent else ())
            return True
        pos = element_end
    return changed


def _element_head(data: mmap.mmap, pos: int, end: int) -> tuple[int, int, int]:
    """(ID, size, header length) of the EBML element at `pos`: size -1 when unknown,
    -2 when the header is broken or cut."""
    id_length = 9 - data[pos].bit_length()
    if id_length > 4 or pos + id_length >= end:
        return 0, -2, 0
    size_length = 9 - data[pos + id_length].bit_length()
    if size_length > 8 or pos + id_length + size_length > end:
        return 0, -2, 0
    ident = int.from_bytes(data[pos:pos + id_length], "big")
    raw = int.from_bytes(data[pos + id_length:pos + id_length + size_length], "big")
    size = raw & ((1 << (7 * size_length)) - 1)
    return ident, -1 if size == (1 << (7 * size_length)) - 1 else size, \
        id_length + size_length


def _cluster_end(data: mmap.mmap, pos: int, end: int) -> int:
    """Where a Cluster of unknown size whose children start at `pos` ends: before the
    first element that cannot be one of its children."""
    while pos < end:
        ident, size, header = _element_head(data, pos, end)
        if ident not in _CLUSTER_CHILDREN or size < 0:
            return pos
        pos = min(pos + header + size, end)
    return end


def _void(length: int) -> list[Piece]:
    """A zero-filled EBML Void element of `length` bytes (a zero when 1)."""
    if length < 2:
        return [length]
    size_length = min(8, length - 1)
    size = length - 1 - size_length
    return [bytes([_VOID]) + ((1 << (7 * size_length)) | size).to_bytes(size_length, "big"),
            size]


def _keep(pieces: list[Piece], start: int, end: int) -> None:
    """Append the source's bytes [start, end), joined to a range just before."""
    last = pieces[-1] if pieces else None
    if isinstance(last, tuple) and last[1] == start:
        pieces[-1] = (last[0], end)
    elif end > start:
        pieces.append((start, end))


# The in-place plan of each demuxer whose formats carry locations.
IN_PLACE: dict[str, Callable[[mmap.mmap], Plan]] = {"mov": _plan_iso,
                                                    "matroska": _plan_matroska}
