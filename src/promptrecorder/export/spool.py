"""The durable spool: OTLP batches that could not be delivered, kept on disk until they can.

A spool is a directory of files, one per batch. Each file holds exactly the bytes an
OTLP/HTTP exporter would POST: a serialized ``ExportTraceServiceRequest``. So a file can be
replayed by hand (``curl --data-binary @FILE -H 'Content-Type: application/x-protobuf'
http://collector:4318/v1/traces``) or read by any OTLP tool. The name carries what is needed
to keep order and to trust the content::

    00000000000000000042-p4711-512-1c291ca3.otlp
    └ sequence number    └ pid └ spans └ CRC-32 of the content

(Files an earlier release wrote, without the ``p<pid>`` part, are read as well.)

* **Order.** Sequence numbers only grow; at start the next one is one past the largest
  found in the directory, so a restarted process appends behind what an earlier one left.
  Batches are re-sent oldest first.
* **Atomic writes.** A batch is written to a hidden ``.tmp-*`` file, fsynced, renamed to its
  final name and the directory fsynced: a file under a final name is always complete.
  ``.tmp-*`` files found at start are the remains of a crash mid-write and are deleted.
* **Integrity.** A file whose content does not match its CRC (truncated, overwritten) is
  renamed to ``<name>.corrupt``, said once in the log, counted, and skipped.
* **Bound.** The files may take at most ``max_bytes``. A batch that does not fit is
  dropped (the newest, see ``Spool.append``), counted, and said once per episode.
* **Refusals.** A file the collector refuses for good (after splitting, for a refusal a
  smaller request may pass) is renamed ``<name>.rejected``, counted and said once: the files
  behind it flow. ``.corrupt`` and ``.rejected`` files stay for a person to look at.
* **One process per directory.** An exclusive ``flock`` on ``.lock`` keeps two processes from
  re-sending the same files; the OS releases it when the process dies, even by SIGKILL. A
  child forked from the process shares the lock; it writes files under its own pid and
  re-sends only those (``after_fork_in_child``), so parent and child never collide.
* **Trust.** Spans carry prompts and responses, and the files are sent with the
  application's credentials: a directory other users can write, or that another user owns,
  is refused with a sentence saying how to fix it; the directory is created ``0700``, files
  ``0600``, and every file (the lock included) is opened without following symlinks.

Threading contract: every method may be called from any thread; appends, removals and
the listing are serialised by one lock.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

from promptrecorder.errors import CorruptSpoolFileError, SpoolUnavailableError

logger = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no cross-process lock (documented)
    fcntl = None  # type: ignore[assignment]

_NAME = re.compile(r"^(\d{20})-(?:p\d+-)?(\d+)-([0-9a-f]{8})\.otlp$")
_SET_ASIDE = re.compile(r"^(\d{20})-.*\.otlp(?:\.\d+)?\.(?:corrupt|rejected)$")
# No symlink is followed when a spool file is opened (O_NOFOLLOW is POSIX; 0 elsewhere).
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_TMP_PREFIX = ".tmp-"
_LOCK_NAME = ".lock"


@dataclass(frozen=True)
class SpoolEntry:
    """One spooled batch: its sequence number, span count, size in bytes and file name.

    ``tag`` is whatever the process that appended it passed along (None after a restart).
    """

    seq: int
    spans: int
    size: int
    name: str
    tag: Any = field(default=None, compare=False, repr=False)


class Spool:
    """A bounded directory of OTLP batches, oldest first. Get one with ``Spool.acquire``.

    Example:
        >>> spool = Spool.acquire("/var/spool/support-bot", max_bytes=64 << 20)  # doctest: +SKIP
        >>> spool.append(payload, spans=512)  # doctest: +SKIP
        >>> entry = spool.oldest(); payload = spool.read(entry); spool.remove(entry)  # doctest: +SKIP
    """

    # One instance per directory in this process: a re-configure() that keeps the same
    # directory shares it instead of tripping over its own lock.
    _open: ClassVar[dict[Path, Spool]] = {}
    _open_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self.draining = threading.Lock()  # held by whoever is re-sending the oldest batch
        self._users = 0
        self._lock_file: IO[bytes] | None = None
        self._entries: list[SpoolEntry] = []
        self._bytes = 0
        self._next_seq = 0
        self.dropped_spans = 0  # spans that did not fit (bound or disk error)
        self.quarantined_files = 0
        self.quarantined_spans = 0
        self.rejected_files = 0
        self.rejected_spans = 0
        self._full_since_drop: int | None = None  # spans dropped in the current "full" episode

    # --- opening and closing ------------------------------------------------------------

    @classmethod
    def acquire(cls, directory: str | os.PathLike[str], max_bytes: int) -> Spool:
        """Open (creating it if needed) the spool in ``directory``; pair with ``release()``.

        Raises:
            SpoolUnavailableError: the directory cannot be created or read, or another
                process holds it.
        """
        path = Path(directory).expanduser().absolute()
        with cls._open_lock:
            spool = cls._open.get(path)
            if spool is None:
                spool = cls(path, max_bytes)
                spool._open_directory()
                cls._open[path] = spool
            spool.max_bytes = max_bytes
            spool._users += 1
            return spool

    def release(self) -> None:
        """Give up this user's hold; the last one closes the directory's lock."""
        with Spool._open_lock:
            self._users -= 1
            if self._users > 0:
                return
            Spool._open.pop(self.directory, None)
            if self._lock_file is not None:
                self._lock_file.close()  # releases the flock
                self._lock_file = None

    def _open_directory(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            _check_trust(self.directory)
            descriptor = os.open(self.directory / _LOCK_NAME, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600)
            lock_file = os.fdopen(descriptor, "r+b")  # held open for the lock's lifetime
        except OSError as error:
            raise SpoolUnavailableError(f"cannot use {self.directory} as a spool: {error}") from None
        if fcntl is not None:
            try:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock_file.close()
                raise SpoolUnavailableError(
                    f"{self.directory} is in use by another process; give each process its own spool_dir"
                ) from None
        self._lock_file = lock_file
        try:
            self._scan()
        except OSError as error:
            self.release_lock_file()
            raise SpoolUnavailableError(f"cannot read the spool {self.directory}: {error}") from None

    def release_lock_file(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _scan(self) -> None:
        entries: list[SpoolEntry] = []
        highest = -1
        for item in os.scandir(self.directory):
            if item.name.startswith(_TMP_PREFIX):
                # A write that never reached its rename: the process died mid-write.
                _unlink_quietly(Path(item.path))
                continue
            match = _NAME.match(item.name)
            if match and not item.is_symlink():  # a planted link is never read
                entry = SpoolEntry(int(match[1]), int(match[2]), item.stat().st_size, item.name)
                entries.append(entry)
                highest = max(highest, entry.seq)
            elif set_aside := _SET_ASIDE.match(item.name):
                highest = max(highest, int(set_aside[1]))
        entries.sort(key=lambda entry: (entry.seq, entry.name))
        self._entries = entries
        self._bytes = sum(entry.size for entry in entries)
        self._next_seq = highest + 1

    # --- the queue ------------------------------------------------------------------------

    def append(self, payload: bytes, spans: int, tag: object = None) -> SpoolEntry | None:
        """Write one batch behind the others; None when it was dropped (and counted).

        ``tag`` comes back on the entry (``oldest()``) to whoever re-sends it.

        When the bound is reached the *newest* batch, this one, is dropped: the older ones
        are already durable and in order, re-sending them needs no rewriting, and a long
        outage does not churn the disk deleting what it wrote minutes ago. (A ring buffer
        would keep the latest minutes instead; that is a trade-off we did not take.)
        """
        with self._lock:
            if self._bytes + len(payload) > self.max_bytes:
                self._drop(spans, f"it is full ({self._bytes} of {self.max_bytes} bytes)")
                return None
            seq = self._next_seq
            name = _file_name(seq, spans, payload)
            try:
                _write_atomically(self.directory, name, payload)
            except OSError as error:
                self._drop(spans, f"it could not be written: {error}")
                return None
            self._next_seq = seq + 1
            entry = SpoolEntry(seq, spans, len(payload), name, tag)
            self._entries.append(entry)
            self._bytes += entry.size
            if self._full_since_drop is not None:
                logger.warning(
                    "promptrecorder: the spool %s has room again; %d spans were dropped while it was full",
                    self.directory,
                    self._full_since_drop,
                )
                self._full_since_drop = None
            return entry

    def _drop(self, spans: int, why: str) -> None:
        self.dropped_spans += spans
        if self._full_since_drop is None:
            self._full_since_drop = spans
            logger.warning(
                "promptrecorder: could not spool %d spans to %s because %s; newer batches are "
                "dropped and counted (spool_dropped_spans) until it has room",
                spans,
                self.directory,
                why,
            )
        else:
            self._full_since_drop += spans

    def oldest(self) -> SpoolEntry | None:
        """The batch to re-send next, or None when the spool is empty."""
        with self._lock:
            return self._entries[0] if self._entries else None

    def read(self, entry: SpoolEntry) -> bytes:
        """The batch's bytes, checked against its name.

        Raises:
            CorruptSpoolFileError: the file is missing, truncated or damaged.
        """
        match = _NAME.match(entry.name)
        try:
            payload = _read_no_follow(self.directory / entry.name)
        except OSError as error:
            raise CorruptSpoolFileError(f"cannot read it: {error}") from None
        if match is None or f"{zlib.crc32(payload):08x}" != match[3]:
            raise CorruptSpoolFileError(f"its {len(payload)} bytes do not match its checksum")
        return payload

    def remove(self, entry: SpoolEntry) -> None:
        """Delete a batch the collector accepted."""
        # The file goes first: whoever sees the spool empty also sees the directory empty.
        _unlink_quietly(self.directory / entry.name)
        self._forget(entry)

    def quarantine(self, entry: SpoolEntry, why: str) -> None:
        """Set a damaged batch aside as ``<name>.corrupt``, count it and say so once."""
        path = self.directory / entry.name
        try:
            path.rename(path.with_name(entry.name + ".corrupt"))
        except OSError:
            _unlink_quietly(path)
        self._forget(entry)
        with self._lock:
            self.quarantined_files += 1
            self.quarantined_spans += entry.spans
        logger.warning(
            "promptrecorder: spooled batch %s (%d spans) cannot be re-sent because %s; "
            "it was set aside as %s.corrupt",
            path,
            entry.spans,
            why,
            entry.name,
        )

    def rewrite(self, entry: SpoolEntry, payload: bytes, spans: int) -> SpoolEntry | None:
        """Replace a batch of which part was delivered by what is left of it, in its place.

        Returns the new entry (same sequence number, so the same place in the order), or
        None when the file could not be written (the old one is then kept as it was).
        """
        name = _file_name(entry.seq, spans, payload)
        try:
            _write_atomically(self.directory, name, payload)
        except OSError as error:
            logger.warning("promptrecorder: could not rewrite the spooled batch %s: %s", entry.name, error)
            return None
        new = SpoolEntry(entry.seq, spans, len(payload), name, entry.tag)
        with self._lock:
            if entry in self._entries:
                self._entries[self._entries.index(entry)] = new
                self._bytes += new.size - entry.size
        if name != entry.name:
            _unlink_quietly(self.directory / entry.name)
        return new

    def set_aside(self, entry: SpoolEntry, why: str) -> Path:
        """Rename a batch the collector refused for good to ``<name>.rejected`` and count it.

        The caller logs it (once per file). Returns the new path.
        """
        path = self.directory / entry.name
        target = path.with_name(entry.name + ".rejected")
        try:
            path.rename(target)
        except OSError:
            _unlink_quietly(path)
        self._forget(entry)
        with self._lock:
            self.rejected_files += 1
            self.rejected_spans += entry.spans
        return target

    def keep_rejected(self, entry: SpoolEntry, part: int, payload: bytes, spans: int) -> Path:
        """Write a refused part of a batch beside it, as ``<name>.<part>.rejected``, and count it."""
        name = f"{entry.name}.{part}.rejected"
        try:
            _write_atomically(self.directory, name, payload)
        except OSError as error:
            logger.warning("promptrecorder: could not keep the refused span as %s: %s", name, error)
        with self._lock:
            self.rejected_spans += spans
        return self.directory / name

    def after_fork_in_child(self) -> None:
        """In a forked child: fresh locks, and none of the parent's files (they are the parent's).

        The child shares the parent's ``flock`` (the same open file); its files carry its own
        pid, so the two never write or re-send the same file.
        """
        self._lock = threading.Lock()
        self.draining = threading.Lock()
        self._entries = []
        self._bytes = 0
        self.dropped_spans = self.quarantined_files = self.quarantined_spans = 0
        self.rejected_files = self.rejected_spans = 0
        self._full_since_drop = None

    @classmethod
    def reset_registry_after_fork(cls) -> None:
        """In a forked child: a registry lock no parent thread can be holding."""
        cls._open_lock = threading.Lock()

    def _forget(self, entry: SpoolEntry) -> None:
        with self._lock:
            if entry in self._entries:
                self._entries.remove(entry)
                self._bytes -= entry.size

    def backlog(self) -> tuple[int, int, int]:
        """(files, spans, bytes) waiting to be re-sent."""
        with self._lock:
            return len(self._entries), sum(entry.spans for entry in self._entries), self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def _file_name(seq: int, spans: int, payload: bytes) -> str:
    return f"{seq:020d}-p{os.getpid()}-{spans}-{zlib.crc32(payload):08x}.otlp"


def _check_trust(directory: Path) -> None:
    """Refuse a spool directory another user could plant files in or read from."""
    status = directory.stat()
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    if uid is not None and status.st_uid != uid:
        raise SpoolUnavailableError(
            f"the spool directory {directory} belongs to another user (uid {status.st_uid}, this "
            f"process runs as uid {uid}); give this process a directory of its own, or run "
            f"`chown {uid} {directory}`"
        )
    if status.st_mode & 0o022:
        raise SpoolUnavailableError(
            f"the spool directory {directory} can be written by other users (mode "
            f"{status.st_mode & 0o777:o}), who could plant batches that would be sent with this "
            f"application's credentials; make it private with `chmod 700 {directory}`"
        )


def _read_no_follow(path: Path) -> bytes:
    descriptor = os.open(path, os.O_RDONLY | _NOFOLLOW)
    with os.fdopen(descriptor, "rb") as file:
        return file.read()


def _write_atomically(directory: Path, name: str, payload: bytes) -> None:
    temporary = directory / f"{_TMP_PREFIX}{name}"
    _unlink_quietly(temporary)  # O_EXCL below: no file, and no link, may be there first
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, directory / name)
    except BaseException:
        _unlink_quietly(temporary)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not every platform lets a directory be opened.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as error:
        logger.warning("promptrecorder: could not delete %s: %s", path, error)
