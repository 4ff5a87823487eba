"""BlobStore on files under the data directory: the embedded engine.

Layout under `root` (data_dir/media):

    objects/<key>                                   the objects
    uploads/<key>/@<upload_id>/upload.json          a multipart upload in progress
    uploads/<key>/@<upload_id>/data                 its bytes: part n at (n - 1) * part size
    uploads/<key>/@<upload_id>/part-000001.<size>.<etag>
                                                    a part held: an empty marker
    uploads/<key>/@<upload_id>/lock-000001          held by the PUT writing part 1
    tmp/                                            files being written

Objects and upload.json are written in tmp/ (same filesystem), fsynced, then renamed
into place (`os.replace`): no reader ever sees half an object. A part is written in
place into the upload's `data` file (`pwrite` at its offset), so that completing an
upload only truncates `data` to its size and renames it to the object: O(1), whatever
the size. A part's marker is made only once its bytes are fsynced, and is dropped (the
drop fsynced) before a part sent again is overwritten: a crash never leaves a marker
for bytes that are not on disk. Parts of one upload may be written at once (distinct
offsets); two PUTs of one part take turns (`lock-…`, the last one wins). Part writers
hold a shared `flock` on `data` while they touch it, and completion an exclusive one:
`data` is never written once it is an object. File IO runs in threads, in chunks, so an
object is never held whole in memory. Uploads sit under their key (`@` is no key
character, so an upload directory never collides with a key), so `delete_prefix`
reaches them without scanning every upload, and `holdings` finds a media's uploads
beside its objects, under `uploads/<app>/<media>/`.

Clients PUT parts to the signed URLs of `part_url`; the HTTP handler that serves them
checks the signature (`UrlSigner.verify`), finds the part with `parse_part_path`, and
streams the body to `write_part`, which enforces the signed size (`z`).

Several processes may share `root` (`caas serve --workers`): nothing here relies on
in-process locks (file locks only). A key that is a whole path segment prefix of
another key (`a/b` and `a/b/c`) cannot be held by this engine (one would be a file, the
other a directory); the media keys `{app}/{media}/{name}` never are.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import itertools
import json
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from services.core.ids import new_id
from services.core.names import APP_ID, SERVER_ID, is_app_id, is_server_id
from services.media.blobs import MAX_HOLDINGS, Blob, BlobNotFound, Holding, Part
from services.media.urls import UrlSigner

MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB  # as S3, so that both engines take the same uploads
MAX_PART_SIZE = 5 * 1024 * MIB
MAX_PARTS = 10_000
WRITE_CHUNK = MIB  # a part is written by batches of this much, one in flight at most
READ_CHUNK = 256 * 1024
LOCK_POLL_SECONDS = 0.05  # how often a PUT of a part that is being written checks again

PARTS_PATH = "/media/v1/parts/"
SIZE_PARAM = "z"  # the signed size of a part URL, in bytes
UPLOAD_FILE = "upload.json"
DATA_FILE = "data"
UPLOAD_MARK = "@"
STALE_TEMP_SECONDS = 24 * 3600  # temp files this old at start are a crash's leftovers

_SEGMENT = r"[a-z0-9._-]+"
_KEY = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*")
_PREFIX = re.compile(rf"(?:{_SEGMENT}/)*[a-z0-9._-]*")
_UPLOAD_ID = re.compile(r"[a-z2-7]{16}")  # services.core.ids.new_id
_PART_FILE = re.compile(r"part-(\d{6})\.(\d+)\.([0-9a-f]{32})")  # a part's marker
_ETAG = re.compile(r"[0-9a-f]{32}")
_PART_PATH = re.compile(rf"{re.escape(PARTS_PATH)}([a-z2-7]{{16}})/([1-9][0-9]{{0,4}})/(.+)")
_MEDIA_PREFIX = re.compile(rf"({APP_ID})/({SERVER_ID})/")
MAX_KEY_LENGTH = 1024  # S3's limit
MAX_SEGMENT_LENGTH = 255  # a file name
# os.link failures that copying works around (another filesystem, no hard links there).
_NO_LINK = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP})


class PartSizeMismatch(Exception):
    """The body of a part PUT was not the size its URL was signed for."""


def check_key(key: str) -> None:
    """ValueError unless `key` is `segment(/segment)*` of [a-z0-9._-], none `.` or `..`."""
    if (len(key) > MAX_KEY_LENGTH or not _KEY.fullmatch(key)
            or any(s in (".", "..") or len(s) > MAX_SEGMENT_LENGTH for s in key.split("/"))):
        raise ValueError(f"invalid blob key {key!r}")


def check_prefix(prefix: str) -> None:
    """ValueError unless `prefix` starts keys: whole segments then a partial one. The
    empty prefix (every object) is refused."""
    head = prefix.rpartition("/")[0]
    if (not prefix or len(prefix) > MAX_KEY_LENGTH or not _PREFIX.fullmatch(prefix)
            or (head and any(s in (".", "..") for s in head.split("/")))):
        raise ValueError(f"invalid blob key prefix {prefix!r}")


def media_prefix(key: str) -> str | None:
    """The media prefix ("{app}/{media}/") of the key, None unless it starts with a valid
    app id and media id and goes on after them."""
    match = _MEDIA_PREFIX.match(key)
    return match.group() if match and len(key) > match.end() else None


def check_holdings(after: str, limit: int) -> None:
    """ValueError unless `after` is "" or a media prefix, and `limit` is within
    1..MAX_HOLDINGS."""
    if after and not _MEDIA_PREFIX.fullmatch(after):
        raise ValueError(f"invalid media prefix {after!r}")
    if not 1 <= limit <= MAX_HOLDINGS:
        raise ValueError(f"limit {limit} is not within 1..{MAX_HOLDINGS}")


def check_part_number(number: int) -> None:
    if not 1 <= number <= MAX_PARTS:
        raise ValueError(f"part number {number} is not within 1..{MAX_PARTS}")


def check_parts(parts: Sequence[Part]) -> None:
    """ValueError unless `parts` is not empty and its numbers strictly increase."""
    if not parts:
        raise ValueError("an upload completes with one part at least")
    numbers = [p.number for p in parts]
    if any(a >= b for a, b in itertools.pairwise(numbers)):
        raise ValueError("parts must be listed by increasing number")


def part_path(key: str, upload_id: str, number: int) -> str:
    """The path of the URL a part is PUT to (keys need no percent-encoding)."""
    return f"{PARTS_PATH}{upload_id}/{number}/{key}"


def parse_part_path(path: str) -> tuple[str, str, int] | None:
    """(key, upload_id, number) of a part URL's path (`part_path`), None if `path` is
    not one (a bad key or id, a number outside 1..10000, any percent-encoding)."""
    match = _PART_PATH.fullmatch(path)
    if match is None:
        return None
    upload_id, number, key = match.group(1), int(match.group(2)), match.group(3)
    try:
        check_key(key)
        check_part_number(number)
    except ValueError:
        return None
    return key, upload_id, number


class LocalBlobStore:
    """The blob store in the directory `root`; part URLs are signed by `signer`."""

    min_part_size = MIN_PART_SIZE

    def __init__(self, root: Path, signer: UrlSigner) -> None:
        self._root = root
        self._objects = root / "objects"
        self._uploads = root / "uploads"
        self._tmp = root / "tmp"
        self._signer = signer

    async def start(self) -> None:
        await asyncio.to_thread(self._start)

    async def close(self) -> None:
        return None

    async def create_upload(self, key: str, content_type: str, part_size: int) -> str:
        """Parts are laid out by `part_size` (see `complete_upload`); ValueError unless
        it is within MIN_PART_SIZE..MAX_PART_SIZE."""
        check_key(key)
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"part size {part_size} is not within "
                             f"{MIN_PART_SIZE}..{MAX_PART_SIZE}")
        upload_id = new_id()
        meta = json.dumps({"key": key, "content_type": content_type,
                           "part_size": part_size}).encode()
        await asyncio.to_thread(self._create_upload, self._upload_dir(key, upload_id), meta)
        return upload_id

    def part_url(self, key: str, upload_id: str, number: int, size: int,
                 expires: datetime) -> str:
        """The signed URL (query: `z` = size, `e` = expiry, `s` = signature) of the part;
        ValueError for a bad key, upload id, number or size."""
        check_key(key)
        check_part_number(number)
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise ValueError(f"invalid upload id {upload_id!r}")
        if not 0 <= size <= MAX_PART_SIZE:
            raise ValueError(f"part size {size} is not within 0..{MAX_PART_SIZE}")
        return self._signer.sign(part_path(key, upload_id, number), int(expires.timestamp()),
                                 {SIZE_PARAM: str(size)})

    async def write_part(self, key: str, upload_id: str, number: int, size: int,
                         chunks: AsyncIterator[bytes]) -> Part:
        """Store part `number` of the upload, replacing any earlier one (a resumed
        upload), from `chunks` (the body of a PUT to its URL), which must be exactly
        `size` bytes: PartSizeMismatch as soon as more arrive, or at the end if fewer
        did. Once the first byte is written, the part is not held (an earlier one
        included: it is overwritten in place) until this write ends well. BlobNotFound
        if the upload is gone (completed or aborted), before or while writing;
        ValueError for a bad key or number, or a size past the upload's part size. The
        chunks are written in batches of WRITE_CHUNK while the next batch is received
        (one batch in flight at most), never gathered whole. A PUT of a part that is
        being written waits until that one ends."""
        check_key(key)
        check_part_number(number)
        if not 0 <= size <= MAX_PART_SIZE:
            raise ValueError(f"part size {size} is not within 0..{MAX_PART_SIZE}")
        part = await _open_part(self._upload_dir(key, upload_id), number, size)
        # The last thread job on the part's files: one at a time, shielded from
        # cancellation (which cannot stop a thread), over before the files close.
        job: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        job.set_result(None)

        def start(work: Callable[..., object], *args: object) -> asyncio.Future[object]:
            nonlocal job
            job = asyncio.ensure_future(asyncio.to_thread(work, *args))
            return job

        try:
            while not part.try_lock():  # noqa: ASYNC110 - a file lock (maybe another process's)
                await asyncio.sleep(LOCK_POLL_SECONDS)
            await asyncio.shield(start(part.begin))
            received = offset = pending_size = 0
            pending: list[bytes] = []
            async for chunk in chunks:
                received += len(chunk)
                if received > size:
                    raise PartSizeMismatch(f"part {number}: more than {size} bytes")
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= WRITE_CHUNK:
                    await asyncio.shield(job)
                    start(part.write, offset, pending)
                    offset += pending_size
                    pending, pending_size = [], 0
            if received < size:
                raise PartSizeMismatch(f"part {number}: {received} bytes, not {size}")
            await asyncio.shield(job)
            etag = await asyncio.shield(start(part.finish, offset, pending))
            return Part(number, size, str(etag))
        finally:
            await _close_after(job, part.close)

    async def list_parts(self, key: str, upload_id: str) -> list[Part]:
        check_key(key)
        return await asyncio.to_thread(_list_parts, self._upload_dir(key, upload_id))

    async def complete_upload(self, key: str, upload_id: str, parts: Sequence[Part]) -> None:
        """Also ValueError when `parts` is empty, out of order, names a part not held
        with that ETag, or a part but the last is below `min_part_size` (as S3); and,
        unlike S3, unless `parts` are 1..n, each of the upload's part size but the last
        (the only uploads CAAS makes). O(1): the upload's bytes become the object."""
        check_key(key)
        check_parts(parts)
        await asyncio.to_thread(self._complete, key, self._upload_dir(key, upload_id),
                                list(parts))

    async def abort_upload(self, key: str, upload_id: str) -> None:
        check_key(key)
        try:
            directory = self._upload_dir(key, upload_id)
        except BlobNotFound:
            return
        await asyncio.to_thread(self._remove_upload, directory)

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        """The content type is not kept: the port has no reader for it."""
        check_key(key)
        await asyncio.to_thread(self._put_file, key, path)

    async def get_file(self, key: str, path: Path) -> None:
        """`path` appears whole (linked or written beside it, then renamed). It is a
        hard link to the object when it can be (same filesystem): read it, never write
        into it (objects are only replaced by rename, so it keeps its bytes)."""
        check_key(key)
        await asyncio.to_thread(self._get_file, key, path)

    async def open(self, key: str, start: int = 0, end: int | None = None) -> Blob:
        """ValueError for a range that starts at or past the end (but the whole of an
        empty object, start 0 and end None, is no bytes) or ends before it starts; an
        end past the last byte reads to the last. Read the chunks from one task at a
        time; `Blob.close` closes the file whether reading started or not."""
        check_key(key)
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"invalid range {start}-{end}")
        file, size = await asyncio.to_thread(self._open_object, key)
        if start >= size and (start, end) != (0, None):
            file.close()
            raise ValueError(f"range start {start} is past the object's {size} bytes")
        stop = size if end is None else min(end + 1, size)
        return Blob(size, _FileChunks(file, start, stop - start))

    async def stat(self, key: str) -> int | None:
        check_key(key)
        return await asyncio.to_thread(_file_size, self._objects / key)

    async def delete_prefix(self, prefix: str) -> None:
        """Also drops the uploads in progress to keys under the prefix. ValueError for
        an invalid or empty prefix."""
        check_prefix(prefix)
        await asyncio.to_thread(self._delete_prefix, prefix)

    async def holdings(self, after: str, limit: int) -> list[Holding]:
        """`newest`: the latest mtime of the files under the prefix, in `objects/` and
        `uploads/` (parts included; files are stat'ed, never read). Each call lists the
        app directories, then the media directories of each app it goes through (a
        directory cannot be read from a name on), and walks the media it returns."""
        check_holdings(after, limit)
        return await asyncio.to_thread(self._holdings, after, limit)

    # In threads from here on.

    def _start(self) -> None:
        for directory in (self._objects, self._uploads, self._tmp):
            directory.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - STALE_TEMP_SECONDS
        with os.scandir(self._tmp) as entries:
            for entry in entries:
                try:
                    if entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)
                except FileNotFoundError:
                    continue

    def _temp_path(self) -> Path:
        return self._tmp / f"{new_id()}.tmp"

    def _upload_dir(self, key: str, upload_id: str) -> Path:
        """BlobNotFound for an id this engine never makes (it cannot exist)."""
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise BlobNotFound(f"no upload {upload_id!r}")
        return self._uploads / key / f"{UPLOAD_MARK}{upload_id}"

    def _create_upload(self, directory: Path, meta: bytes) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        # `data` first: once upload.json is there, the upload is, and writers need it.
        (directory / DATA_FILE).touch(exist_ok=False)
        temp = self._temp_path()
        try:
            with open(temp, "xb") as file:
                file.write(meta)
                _sync(file)
            _place(temp, directory / UPLOAD_FILE)
        finally:
            temp.unlink(missing_ok=True)

    def _complete(self, key: str, directory: Path, parts: list[Part]) -> None:
        target = self._objects / key
        try:
            part_size = _part_size(directory)
            data = os.open(directory / DATA_FILE, os.O_RDWR)
        except (BlobNotFound, FileNotFoundError) as error:
            if _file_size(target) is None:
                raise BlobNotFound(f"no upload {directory.name[1:]} of {key}") from error
            self._remove_upload(directory)  # completed before (maybe cut short after)
            return
        try:
            fcntl.flock(data, fcntl.LOCK_EX)  # no part is being written now
            if not _is_file_at(data, directory / DATA_FILE):  # completed meanwhile
                if _file_size(target) is None:
                    raise BlobNotFound(f"no upload {directory.name[1:]} of {key}")
                return
            held = {(p.number, p.etag): p.size for p in _list_parts(directory)}
            sizes = []
            for part in parts:
                size = held.get((part.number, _etag(part.etag)))
                if size is None:
                    raise ValueError(f"part {part.number} is not held with the ETag "
                                     f"{part.etag!r}")
                sizes.append(size)
            small = [p.number for p, size in zip(parts[:-1], sizes, strict=False)
                     if size < MIN_PART_SIZE]
            if small:
                raise ValueError(f"parts {small} are below {MIN_PART_SIZE} bytes")
            if ([p.number for p in parts] != list(range(1, len(parts) + 1))
                    or any(size != part_size for size in sizes[:-1])):
                raise ValueError(f"this engine joins parts 1..n of {part_size} bytes each "
                                 "but the last")
            os.ftruncate(data, part_size * (len(parts) - 1) + sizes[-1])
            os.fsync(data)
            _place(directory / DATA_FILE, target)
        finally:
            os.close(data)
        self._remove_upload(directory)

    def _remove_upload(self, directory: Path) -> None:
        # Without its upload.json the upload is gone at once, even if a part being
        # written lands in the directory while it is removed.
        (directory / UPLOAD_FILE).unlink(missing_ok=True)
        shutil.rmtree(directory, ignore_errors=True)
        _prune(directory.parent, self._uploads)

    def _put_file(self, key: str, path: Path) -> None:
        temp = self._temp_path()
        try:
            with open(path, "rb") as source, open(temp, "xb") as out:
                shutil.copyfileobj(source, out, WRITE_CHUNK)
                _sync(out)
            _place(temp, self._objects / key)
        finally:
            temp.unlink(missing_ok=True)

    def _get_file(self, key: str, path: Path) -> None:
        temp = path.with_name(f".{path.name}.{new_id()}.tmp")
        try:
            try:
                os.link(self._objects / key, temp)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as error:
                raise BlobNotFound(key) from error
            except OSError as error:
                if error.errno not in _NO_LINK:
                    raise
                source = self._open_object(key)[0]
                with source, open(temp, "xb") as out:
                    shutil.copyfileobj(source, out, WRITE_CHUNK)
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)

    def _open_object(self, key: str) -> tuple[BinaryIO, int]:
        try:
            file = open(self._objects / key, "rb")  # noqa: SIM115 - closed by the caller
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as error:
            raise BlobNotFound(key) from error
        size = os.fstat(file.fileno()).st_size
        return file, size

    def _delete_prefix(self, prefix: str) -> None:
        head, _, tail = prefix.rpartition("/")
        for base in (self._objects, self._uploads):
            directory = base / head if head else base
            try:
                with os.scandir(directory) as scan:
                    entries = list(scan)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                # `@…` entries are uploads of the key `head` itself, shorter than prefix.
                if entry.name.startswith(UPLOAD_MARK) or not entry.name.startswith(tail):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    Path(entry.path).unlink(missing_ok=True)
            _prune(directory, base)

    def _holdings(self, after: str, limit: int) -> list[Holding]:
        after_app = after.partition("/")[0]
        found: list[Holding] = []
        apps = _subdirectories(self._objects) | _subdirectories(self._uploads)
        # In the order of the prefixes, "{app}/": "ab-c/" comes before "ab/".
        for app in sorted(apps, key=lambda name: f"{name}/"):
            if not is_app_id(app) or (after and f"{app}/" < f"{after_app}/"):
                continue
            media_ids = (_subdirectories(self._objects / app)
                         | _subdirectories(self._uploads / app))
            for media in sorted(media_ids):  # all of one length: as their prefixes
                prefix = f"{app}/{media}/"
                if not is_server_id(media) or prefix <= after:
                    continue
                # (`@…` right under uploads/<app>/<media>: uploads to that key itself.)
                newest = max(_newest_file(self._objects / app / media),
                             _newest_file(self._uploads / app / media, skip=UPLOAD_MARK))
                if newest >= 0:
                    found.append(Holding(prefix, datetime.fromtimestamp(newest / 1e9, UTC)))
                    if len(found) == limit:
                        return found
        return found


class _FileChunks:
    """`length` bytes of `file` from `start`, read in threads; the file is closed at the
    end or by `aclose` (which a never-started async generator could not do)."""

    def __init__(self, file: BinaryIO, start: int, length: int) -> None:
        self._file = file
        self._start = start
        self._left = length

    def __aiter__(self) -> _FileChunks:
        return self

    async def __anext__(self) -> bytes:
        if self._left <= 0 or self._file.closed:
            self._file.close()
            raise StopAsyncIteration
        chunk = await asyncio.to_thread(self._read, min(READ_CHUNK, self._left))
        if not chunk:
            self._file.close()
            raise StopAsyncIteration
        self._left -= len(chunk)
        return chunk

    def _read(self, size: int) -> bytes:
        if self._start >= 0:
            self._file.seek(self._start)
            self._start = -1
        return self._file.read(size)

    async def aclose(self) -> None:
        self._file.close()


def _sync(file: BinaryIO) -> None:
    file.flush()
    os.fsync(file.fileno())


def _place(temp: Path, target: Path) -> None:
    """Rename `temp` to `target`, making its directory (again, if a concurrent
    delete_prefix pruned it meanwhile)."""
    for attempt in range(3):
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(temp, target)
            return
        except FileNotFoundError:
            if attempt == 2 or not temp.exists():
                raise


class _PartFile:
    """The files a PUT of a part works on: the upload's `data` (written at the part's
    offset) and the part's lock. Its methods but `try_lock` and `close` run in threads,
    one at a time."""

    def __init__(self, directory: Path, number: int, size: int, offset: int, data: int,
                 lock: int) -> None:
        self._directory = directory
        self._number = number
        self._size = size
        self._offset = offset
        self._data = data
        self._lock = lock

    @classmethod
    def open(cls, directory: Path, number: int, size: int) -> _PartFile:
        """BlobNotFound if the upload is not there; ValueError if `size` is past its
        part size."""
        part_size = _part_size(directory)
        if size > part_size:
            raise ValueError(f"part size {size} is past the upload's {part_size}")
        try:
            data = os.open(directory / DATA_FILE, os.O_WRONLY)
        except FileNotFoundError as error:
            raise BlobNotFound(f"no upload {directory.name[1:]}") from error
        try:
            lock = os.open(directory / f"lock-{number:06d}", os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError as error:
            os.close(data)
            raise BlobNotFound(f"no upload {directory.name[1:]}") from error
        except BaseException:
            os.close(data)
            raise
        return cls(directory, number, size, (number - 1) * part_size, data, lock)

    def try_lock(self) -> bool:
        """Take the part's lock if no other PUT of it holds it (does not block)."""
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def begin(self) -> None:
        """Drop the part's marker, for good (the directory is fsynced), before its
        bytes are overwritten."""
        with self._using_data():
            if _drop_markers(self._directory, self._number):
                _sync_directory(self._directory)

    def write(self, offset: int, chunks: list[bytes]) -> None:
        """Write `chunks` at `offset` in the part."""
        with self._using_data():
            _pwrite(self._data, chunks, self._offset + offset)

    def finish(self, offset: int, chunks: list[bytes]) -> str:
        """Write the last `chunks`, fsync, then mark the part held; its ETag."""
        etag = secrets.token_hex(16)  # any 32 hex digits: this engine's ETags are no MD5
        with self._using_data():
            _pwrite(self._data, chunks, self._offset + offset)
            _datasync(self._data)
            name = f"part-{self._number:06d}.{self._size}.{etag}"
            os.close(os.open(self._directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             0o644))  # the only one: begin() dropped the others, under lock
        return etag

    def close(self) -> None:
        os.close(self._data)
        os.close(self._lock)  # and its flock

    @contextlib.contextmanager
    def _using_data(self) -> Iterator[None]:
        """Hold a shared lock on `data` (completion takes it exclusively) while it is
        still the upload's: BlobNotFound once it is an object, or deleted."""
        fcntl.flock(self._data, fcntl.LOCK_SH)
        try:
            if not _is_file_at(self._data, self._directory / DATA_FILE):
                raise BlobNotFound(f"no upload {self._directory.name[1:]}")
            yield
        finally:
            fcntl.flock(self._data, fcntl.LOCK_UN)


async def _open_part(directory: Path, number: int, size: int) -> _PartFile:
    """`_PartFile.open` in a thread; closed when it opens if cancelled meanwhile."""
    opening = asyncio.ensure_future(asyncio.to_thread(_PartFile.open, directory, number, size))
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        opening.add_done_callback(_close_opened)
        raise


def _close_opened(opening: asyncio.Future[_PartFile]) -> None:
    if opening.exception() is None:
        opening.result().close()


async def _close_after(job: asyncio.Future[object], close: Callable[[], None]) -> None:
    """Call `close` once `job` (a thread using the files it closes) is over: now if it
    is, else when it ends, waiting for it unless cancelled meanwhile. The job's error,
    if any, is not raised: it was, or another error is on its way."""
    if job.done():
        if not job.cancelled():
            job.exception()  # retrieved: no "never retrieved" warning
        close()
        return
    job.add_done_callback(lambda _: close())
    with contextlib.suppress(Exception):
        await asyncio.shield(job)


def _pwrite(fd: int, chunks: list[bytes], offset: int) -> None:
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            written = os.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written


def _datasync(fd: int) -> None:
    (getattr(os, "fdatasync", None) or os.fsync)(fd)  # (macOS has no fdatasync)


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _drop_markers(directory: Path, number: int) -> bool:
    """Remove the markers of part `number`; whether there were any."""
    dropped = False
    for marker in directory.glob(f"part-{number:06d}.*"):
        if _PART_FILE.fullmatch(marker.name):
            marker.unlink(missing_ok=True)
            dropped = True
    return dropped


def _is_file_at(fd: int, path: Path) -> bool:
    """Whether `path` is the file open as `fd`."""
    try:
        there = os.stat(path)
    except FileNotFoundError:
        return False
    here = os.fstat(fd)
    return (there.st_dev, there.st_ino) == (here.st_dev, here.st_ino)


def _part_size(directory: Path) -> int:
    """The upload's part size; BlobNotFound if it is not there (or was begun by an
    earlier version of this engine, which laid parts out otherwise)."""
    try:
        meta = json.loads((directory / UPLOAD_FILE).read_bytes())
    except (FileNotFoundError, NotADirectoryError) as error:
        raise BlobNotFound(f"no upload {directory.name[1:]}") from error
    if not isinstance(meta.get("part_size"), int):
        raise BlobNotFound(f"upload {directory.name[1:]} is of an earlier layout")
    return int(meta["part_size"])


def _list_parts(directory: Path) -> list[Part]:
    if not _upload_exists(directory):
        raise BlobNotFound(f"no upload {directory.name[1:]}")
    newest: dict[int, tuple[int, Part]] = {}
    try:
        with os.scandir(directory) as scan:
            entries = list(scan)
    except FileNotFoundError as error:
        raise BlobNotFound(f"no upload {directory.name[1:]}") from error
    for entry in entries:
        match = _PART_FILE.fullmatch(entry.name)
        if match is None:
            continue
        try:
            info = entry.stat()
        except FileNotFoundError:
            continue
        number = int(match.group(1))
        # One marker a part (made and dropped under its lock); the newest if more.
        if number not in newest or info.st_mtime_ns > newest[number][0]:
            newest[number] = (info.st_mtime_ns,
                              Part(number, int(match.group(2)), match.group(3)))
    return [newest[n][1] for n in sorted(newest)]


def _upload_exists(directory: Path) -> bool:
    return (directory / UPLOAD_FILE).is_file()


def _file_size(path: Path) -> int | None:
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _subdirectories(directory: Path) -> set[str]:
    """The names of the directories in `directory` (none if it is missing)."""
    try:
        with os.scandir(directory) as scan:
            return {entry.name for entry in scan if entry.is_dir(follow_symlinks=False)}
    except (FileNotFoundError, NotADirectoryError):
        return set()


def _newest_file(directory: Path, skip: str = "") -> int:
    """The latest mtime (ns) of the regular files under `directory`, at any depth; -1
    if there is none. Entries of `directory` itself whose names start with `skip` (if
    given) are left out. Files deleted meanwhile are no error."""
    newest = -1
    pending = [(str(directory), True)]
    while pending:
        path, top = pending.pop()
        try:
            with os.scandir(path) as scan:
                entries = list(scan)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if top and skip and entry.name.startswith(skip):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append((entry.path, False))
                    continue
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode):
                newest = max(newest, info.st_mtime_ns)
    return newest


def _etag(etag: str) -> str:
    """The ETag as this engine names part files (S3 clients may quote it)."""
    bare = etag.strip('"').lower()
    if not _ETAG.fullmatch(bare):
        raise ValueError(f"invalid part ETag {etag!r}")
    return bare


def _prune(directory: Path, base: Path) -> None:
    """Remove `directory` and its parents up to `base` (excluded) while they are empty."""
    while directory != base and base in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent
