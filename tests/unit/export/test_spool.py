"""The spool on disk: order, atomic writes, the bound, restart recovery, damaged files, the codec."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from promptrecorder import PromptRecorder, autorecord
from promptrecorder.errors import CorruptSpoolFileError, SpoolUnavailableError
from promptrecorder.export.otlp_codec import encode_batch
from promptrecorder.export.spool import Spool


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def spool(spool_dir: Path) -> Iterator[Spool]:
    opened = Spool.acquire(spool_dir, max_bytes=1 << 20)
    yield opened
    opened.release()


def _files(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name != ".lock")


# --- the file format ------------------------------------------------------------------------------


def test_a_spooled_file_is_plain_otlp(spool: Spool) -> None:
    """The file holds an ExportTraceServiceRequest as OTLP/HTTP would POST it, nothing else."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with PromptRecorder("session", tracer_provider=provider):
        autorecord("p", "r")
    spans = exporter.get_finished_spans()
    entry = spool.append(encode_batch(spans), len(spans))
    assert entry is not None
    request = ExportTraceServiceRequest()
    request.ParseFromString((spool.directory / entry.name).read_bytes())
    names = [span.name for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]
    assert sorted(names) == sorted(span.name for span in spans)


# --- order and atomic writes -------------------------------------------------------------------


def test_batches_come_back_oldest_first_with_growing_sequence_numbers(spool: Spool) -> None:
    """oldest() follows append order; names sort in that order; remove() moves to the next."""
    payloads = [encode_batch([]) + bytes([index]) for index in range(3)]
    entries = [spool.append(payload, 1) for payload in payloads]
    assert [entry.seq for entry in entries if entry] == [0, 1, 2]
    assert _files(spool.directory) == sorted(entry.name for entry in entries if entry)
    for payload in payloads:
        oldest = spool.oldest()
        assert oldest is not None
        assert spool.read(oldest) == payload
        spool.remove(oldest)
    assert spool.oldest() is None
    assert _files(spool.directory) == []


def test_each_write_is_fsynced_then_renamed_into_place(spool: Spool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The content is fsynced under a temporary name, renamed, and the directory fsynced."""
    steps: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor: int) -> None:
        steps.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{descriptor}") else "fsync-file")
        real_fsync(descriptor)

    def replace(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        assert Path(source).name.startswith(".tmp-")
        steps.append("rename")
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    assert spool.append(b"payload", 1) is not None
    assert steps == ["fsync-file", "rename", "fsync-dir"]


def test_a_write_that_fails_leaves_nothing_behind_and_is_counted(
    spool: Spool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A disk error mid-write: no partial file under any name, the spans counted as dropped."""

    def full_disk(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with caplog.at_level(logging.WARNING, logger="promptrecorder"):
        assert spool.append(b"payload", 7) is None
    assert _files(spool.directory) == []
    assert spool.dropped_spans == 7
    assert "No space left on device" in caplog.text


def test_a_write_interrupted_by_a_crash_is_cleaned_up_at_start(spool_dir: Path) -> None:
    """A .tmp- file (a process died mid-write) is deleted when the spool is opened again."""
    spool = Spool.acquire(spool_dir, max_bytes=1 << 20)
    spool.append(b"complete", 1)
    spool.release()
    (spool_dir / ".tmp-00000000000000000001-1-00000000.otlp").write_bytes(b"half a bat")
    reopened = Spool.acquire(spool_dir, max_bytes=1 << 20)
    try:
        assert _files(spool_dir) == [f"00000000000000000000-p{os.getpid()}-1-{_crc(b'complete')}.otlp"]
        assert len(reopened) == 1
    finally:
        reopened.release()


def _crc(payload: bytes) -> str:
    import zlib

    return f"{zlib.crc32(payload):08x}"


# --- the bound ---------------------------------------------------------------------------------


def test_the_bound_drops_the_newest_batch_counts_it_and_says_so_once_per_episode(
    spool_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Past max_bytes appends are refused and counted; one line when full, one when room returns."""
    spool = Spool.acquire(spool_dir, max_bytes=250)
    try:
        with caplog.at_level(logging.WARNING, logger="promptrecorder"):
            assert spool.append(b"x" * 100, 10) is not None
            assert spool.append(b"y" * 100, 10) is not None
            assert spool.append(b"z" * 100, 10) is None  # the newest is dropped
            assert spool.append(b"w" * 100, 5) is None
            assert spool.backlog() == (2, 20, 200)
            assert spool.dropped_spans == 15
            oldest = spool.oldest()
            assert oldest is not None
            assert spool.read(oldest) == b"x" * 100  # the oldest were kept
            spool.remove(oldest)
            assert spool.append(b"v" * 100, 1) is not None
        messages = [record.getMessage() for record in caplog.records]
        assert len(messages) == 2, messages
        assert "could not spool 10 spans" in messages[0]
        assert "is full (200 of 250 bytes)" in messages[0]
        assert "has room again; 15 spans were dropped" in messages[1]
    finally:
        spool.release()


# --- restart recovery and the lock -------------------------------------------------------------


def test_a_reopened_spool_resumes_in_order_behind_what_it_holds(spool_dir: Path) -> None:
    """After a restart the backlog is found, in order, and new batches get higher numbers."""
    first = Spool.acquire(spool_dir, max_bytes=1 << 20)
    for index in range(3):
        first.append(bytes([index]), index + 1)
    first.release()
    second = Spool.acquire(spool_dir, max_bytes=1 << 20)
    try:
        assert second.backlog() == (3, 6, 3)
        new = second.append(b"new", 1)
        assert new is not None
        assert new.seq == 3
        order = []
        while (entry := second.oldest()) is not None:
            order.append(second.read(entry))
            second.remove(entry)
        assert order == [b"\x00", b"\x01", b"\x02", b"new"]
    finally:
        second.release()


def test_one_directory_is_used_by_one_process_at_a_time(spool_dir: Path) -> None:
    """While another process holds the directory, acquiring it fails plainly; after it exits, it works."""
    script = textwrap.dedent(
        f"""
        import sys
        from promptrecorder.export.spool import Spool
        Spool.acquire({str(spool_dir)!r}, 1024)
        print("held", flush=True)
        sys.stdin.read()
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "held"
            with pytest.raises(SpoolUnavailableError, match="in use by another process"):
                Spool.acquire(spool_dir, max_bytes=1024)
        finally:
            holder.kill()
    Spool.acquire(spool_dir, max_bytes=1024).release()


def test_the_same_directory_twice_in_one_process_is_one_spool(spool_dir: Path) -> None:
    """A re-configure() with the same spool_dir shares the open spool instead of locking itself out."""
    first = Spool.acquire(spool_dir, max_bytes=100)
    second = Spool.acquire(spool_dir, max_bytes=200)
    try:
        assert first is second
        assert second.max_bytes == 200
    finally:
        second.release()
        first.release()


def test_a_directory_that_cannot_be_created_is_refused_plainly(tmp_path: Path) -> None:
    """A file where the directory should be: SpoolUnavailableError naming the path."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(SpoolUnavailableError, match="cannot use"):
        Spool.acquire(blocker, max_bytes=1024)


def test_files_and_directory_are_private(spool: Spool) -> None:
    """Spans carry prompts: the spool directory is 0700 and its files 0600."""
    entry = spool.append(b"secret prompt", 1)
    assert entry is not None
    assert (spool.directory.stat().st_mode & 0o777) == 0o700
    assert ((spool.directory / entry.name).stat().st_mode & 0o777) == 0o600


# --- damaged files -------------------------------------------------------------------------------


def test_a_truncated_file_is_refused_and_quarantined_with_one_log_line(
    spool: Spool, caplog: pytest.LogCaptureFixture
) -> None:
    """A file cut short no longer matches its checksum: read() refuses it; quarantine() sets it aside."""
    entry = spool.append(b"0123456789" * 10, 4)
    assert entry is not None
    path = spool.directory / entry.name
    path.write_bytes(path.read_bytes()[:37])
    with pytest.raises(CorruptSpoolFileError, match="do not match its checksum"):
        spool.read(entry)
    with caplog.at_level(logging.WARNING, logger="promptrecorder"):
        spool.quarantine(entry, "it was cut short")
    assert len(caplog.records) == 1
    assert "cannot be re-sent because it was cut short" in caplog.records[0].getMessage()
    assert _files(spool.directory) == [entry.name + ".corrupt"]
    assert spool.oldest() is None
    assert (spool.quarantined_files, spool.quarantined_spans) == (1, 4)


def test_a_quarantined_file_is_skipped_after_a_restart_and_its_number_not_reused(spool_dir: Path) -> None:
    """.corrupt files are not re-sent by a later process, and new files sort after them."""
    spool = Spool.acquire(spool_dir, max_bytes=1 << 20)
    entry = spool.append(b"abc", 1)
    assert entry is not None
    spool.quarantine(entry, "test")
    spool.release()
    reopened = Spool.acquire(spool_dir, max_bytes=1 << 20)
    try:
        assert reopened.oldest() is None
        again = reopened.append(b"def", 1)
        assert again is not None
        assert again.seq == entry.seq + 1
    finally:
        reopened.release()


# --- trust ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o722])
def test_a_directory_other_users_can_write_is_refused_with_the_fix(spool_dir: Path, mode: int) -> None:
    """Group- or world-writable: refused, and the message says `chmod 700 DIR`; nothing is written."""
    spool_dir.mkdir()
    spool_dir.chmod(mode)
    with pytest.raises(
        SpoolUnavailableError, match=f"can be written by other users.*`chmod 700 {spool_dir}`"
    ):
        Spool.acquire(spool_dir, max_bytes=1 << 20)
    assert os.listdir(spool_dir) == []


def test_a_directory_owned_by_another_user_is_refused(spool_dir: Path) -> None:
    """A private directory that another uid owns is refused too, naming both uids."""
    if os.geteuid() != 0:
        pytest.skip("only root can give a directory to another user here")
    spool_dir.mkdir(mode=0o700)
    os.chown(spool_dir, 12345, -1)
    with pytest.raises(SpoolUnavailableError, match="belongs to another user \\(uid 12345"):
        Spool.acquire(spool_dir, max_bytes=1 << 20)


def test_a_new_directory_is_created_private(tmp_path: Path) -> None:
    """A spool directory that does not exist yet is made 0700."""
    spool = Spool.acquire(tmp_path / "new" / "spool", max_bytes=1 << 20)
    try:
        assert (tmp_path / "new" / "spool").stat().st_mode & 0o777 == 0o700
    finally:
        spool.release()


def test_a_symlinked_lock_is_not_followed(spool_dir: Path, tmp_path: Path) -> None:
    """.lock planted as a symlink to another file: the spool refuses it and the target is untouched."""
    spool_dir.mkdir(mode=0o700)
    target = tmp_path / "victim"
    target.write_bytes(b"precious")
    (spool_dir / ".lock").symlink_to(target)
    with pytest.raises(SpoolUnavailableError, match="cannot use"):
        Spool.acquire(spool_dir, max_bytes=1 << 20)
    assert target.read_bytes() == b"precious"


def test_a_symlinked_batch_file_is_never_read(spool_dir: Path, tmp_path: Path) -> None:
    """A file named like a batch but a symlink (to a secret, say) is not queued and not read."""
    spool_dir.mkdir(mode=0o700)
    secret = tmp_path / "secret"
    secret.write_bytes(b"key material")
    (spool_dir / f"00000000000000000007-1-{_crc(b'key material')}.otlp").symlink_to(secret)
    spool = Spool.acquire(spool_dir, max_bytes=1 << 20)
    try:
        assert spool.oldest() is None
        assert spool.append(b"next", 1) is not None
        assert spool.oldest().seq == 0  # type: ignore[union-attr]
    finally:
        spool.release()


def test_reading_a_batch_that_became_a_symlink_fails_plainly(spool: Spool, tmp_path: Path) -> None:
    """Swapped for a symlink after it was listed: read() refuses it (O_NOFOLLOW) as a damaged file."""
    entry = spool.append(b"payload", 1)
    assert entry is not None
    path = spool.directory / entry.name
    path.unlink()
    (tmp_path / "elsewhere").write_bytes(b"payload")
    path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(CorruptSpoolFileError, match="cannot read it"):
        spool.read(entry)


# --- file names, rewriting, setting aside ----------------------------------------------------


def test_files_are_named_with_the_pid_and_older_names_are_still_read(spool_dir: Path) -> None:
    """New files carry p<pid>; a file an earlier release wrote (no pid) is read, in order."""
    spool_dir.mkdir(mode=0o700)
    old = b"written by an earlier release"
    (spool_dir / f"00000000000000000003-2-{_crc(old)}.otlp").write_bytes(old)
    spool = Spool.acquire(spool_dir, max_bytes=1 << 20)
    try:
        new = spool.append(b"new", 1)
        assert new is not None
        assert new.name.startswith(f"00000000000000000004-p{os.getpid()}-1-")
        oldest = spool.oldest()
        assert oldest is not None
        assert (oldest.seq, oldest.spans, spool.read(oldest)) == (3, 2, old)
    finally:
        spool.release()


def test_a_rewritten_batch_keeps_its_place_and_a_set_aside_one_keeps_its_number(spool_dir: Path) -> None:
    """rewrite() replaces a file in its place in the order; set_aside() renames it *.rejected, and
    after a restart its sequence number is not reused."""
    spool = Spool.acquire(spool_dir, max_bytes=1 << 20)
    first = spool.append(b"first, three spans", 3)
    second = spool.append(b"second", 1)
    assert first is not None
    assert second is not None
    rewritten = spool.rewrite(first, b"first, one left", 1)
    assert rewritten is not None
    assert spool.oldest() == rewritten
    assert spool.read(rewritten) == b"first, one left"
    assert not (spool_dir / first.name).exists()
    path = spool.set_aside(second, "HTTP 403 Forbidden")
    assert path.name == second.name + ".rejected"
    assert path.read_bytes() == b"second"
    assert (spool.rejected_files, spool.rejected_spans, spool.backlog()[:2]) == (1, 1, (1, 1))
    spool.release()
    reopened = Spool.acquire(spool_dir, max_bytes=1 << 20)
    try:
        entry = reopened.append(b"after restart", 1)
        assert entry is not None
        assert entry.seq == 2
    finally:
        reopened.release()
