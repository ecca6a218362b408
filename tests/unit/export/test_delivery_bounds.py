"""Delivery through configure()'s own processor, with a fake sender: byte bounds, retries,
splitting, set-aside spans, messages, shutdown, recording after shutdown, fork, credentials."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from promptrecorder import PromptRecorder, configure, delivery_stats, flush, shutdown
from promptrecorder.export import senders
from promptrecorder.export.otlp_send import SendResult

pytestmark = pytest.mark.usefixtures("global_tracing")

ACCEPTED = SendResult(True, False, False, "accepted", status=200)
REFUSED = SendResult(False, True, False, "connection refused (http://fake:4318/v1/traces)")


def names_in(body: bytes) -> list[str]:
    request = ExportTraceServiceRequest.FromString(body)
    # The recorders' names: their spans are `invoke_workflow <name>`.
    return [
        span.name.removeprefix("invoke_workflow ")
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]


class FakeSender:
    """An ``OtlpSender`` answering by a rule; keeps every attempt and what it accepted."""

    protocol = "http/protobuf"
    destination = "http://fake:4318/v1/traces"
    timeout = 2.0

    def __init__(self, answer: Callable[[bytes], SendResult] | None = None) -> None:
        self.answer = answer or (lambda body: ACCEPTED)
        self.attempts: list[tuple[float, int, float]] = []  # (when, bytes, timeout)
        self.accepted: list[bytes] = []
        self.closed = False
        self.lock = threading.Lock()

    def send(self, body: bytes, timeout: float) -> SendResult:
        with self.lock:
            self.attempts.append((time.monotonic(), len(body), timeout))
        result = self.answer(body)
        if result.delivered:
            with self.lock:
                self.accepted.append(body)
        return result

    def close(self) -> None:
        self.closed = True

    def names(self) -> list[str]:
        return [name for body in self.accepted for name in names_in(body)]


@pytest.fixture
def use_sender(monkeypatch: pytest.MonkeyPatch) -> Callable[[FakeSender], None]:
    """configure()'s OTLP exporter sends through the given fake (also after a fork)."""

    def use(sender: FakeSender) -> None:
        def build(protocol: object, endpoint: object, headers: object, timeout: float | None) -> FakeSender:
            sender.timeout = timeout or FakeSender.timeout  # as the real senders resolve it
            return sender

        monkeypatch.setattr(senders, "build_sender", build)

    return use


def record(count: int, prefix: str = "s", text: str = "p") -> list[PromptRecorder]:
    """One span per session, carrying ``text`` twice as a pair's events did (a pair itself
    would add its call span, and these tests count and size spans)."""
    recorders = []
    for index in range(count):
        with PromptRecorder(f"{prefix}{index}", attributes={"prompt": text, "response": text}) as recorder:
            pass
        recorders.append(recorder)
    return recorders


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("promptrecorder") and r.levelno >= logging.WARNING
    ]


# --- bounds -----------------------------------------------------------------------------------


def test_requests_are_bounded_in_bytes_and_in_spans(
    use_sender: Callable[[FakeSender], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """4 KB prompts, 64 KiB requests, 50 spans a batch: every span arrives, no request is over either bound."""
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "50")
    sender = FakeSender()
    use_sender(sender)
    configure(max_request_bytes=64 * 1024)
    record(300, text="x" * 4096)
    assert flush(timeout=10) is True
    assert sorted(sender.names()) == sorted(f"s{i}" for i in range(300))
    sizes = [len(body) for body in sender.accepted]
    assert max(sizes) <= 64 * 1024
    assert max(len(names_in(body)) for body in sender.accepted) <= 50
    assert len(sender.accepted) >= 300 * 8192 // (64 * 1024)  # bytes, not the span count, bounded them
    assert delivery_stats()[0].largest_request_bytes == max(sizes)


def test_a_span_larger_than_the_bound_is_sent_alone(use_sender: Callable[[FakeSender], None]) -> None:
    """One 50 KB span with a 10 KB bound: sent by itself; the small ones share requests."""
    sender = FakeSender()
    use_sender(sender)
    configure(max_request_bytes=10_000)
    record(3, "small")
    record(1, "big", text="y" * 50_000)
    record(3, "tail")
    assert flush(timeout=10) is True
    batches = [names_in(body) for body in sender.accepted]
    assert ["big0"] in batches
    assert all(
        len(body) <= 10_000
        for body, names in zip(sender.accepted, batches, strict=False)
        if names != ["big0"]
    )
    assert sum(len(names) for names in batches) == 7


def test_the_queue_is_bounded_in_bytes_too(
    use_sender: Callable[[FakeSender], None],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sender that hangs and a 100 KB byte bound: 10 KB spans beyond it are dropped and counted
    (queue_dropped_spans), said once, though the span-count bound (2048) is far away."""
    monkeypatch.setenv("PROMPTRECORDER_MAX_QUEUE_BYTES", "100000")
    release = threading.Event()
    sender = FakeSender(lambda body: ACCEPTED if release.wait(10) else REFUSED)
    use_sender(sender)
    configure(max_request_bytes=50_000)
    with caplog.at_level(logging.WARNING, logger="promptrecorder"):
        record(40, text="w" * 5000)
        release.set()
        assert flush(timeout=10) is False
    stats = delivery_stats()[0]
    assert stats.queue_dropped_spans > 0
    assert stats.exported_spans + stats.queue_dropped_spans == 40
    assert len(sender.names()) == stats.exported_spans < 40
    assert len([line for line in warnings_of(caplog) if "queue" in line]) == 1


def test_a_span_that_cannot_be_encoded_is_lost_alone(use_sender: Callable[[FakeSender], None]) -> None:
    """A span whose start time OTLP cannot hold (negative nanoseconds) fails on its own: the spans
    around it arrive, it is counted as failed."""
    from opentelemetry import trace

    sender = FakeSender()
    use_sender(sender)
    configure()
    tracer = trace.get_tracer("test")
    tracer.start_span("before").end()
    tracer.start_span("bad", start_time=-5).end()
    tracer.start_span("after").end()
    assert flush(timeout=5) is False
    assert sender.names() == ["before", "after"]
    stats = delivery_stats()[0]
    assert (stats.exported_spans, stats.failed_spans) == (2, 1)
    assert "could not be encoded" in (stats.last_error or "")


@pytest.mark.parametrize(
    ("kwargs", "env", "match"),
    [
        ({"max_request_bytes": 0}, {}, "`max_request_bytes` must be a positive int"),
        ({"max_request_bytes": True}, {}, "`max_request_bytes` must be a positive int"),
        ({"max_request_bytes": "4MB"}, {}, "`max_request_bytes` must be a positive int"),
        ({}, {"PROMPTRECORDER_MAX_REQUEST_BYTES": "lots"}, "PROMPTRECORDER_MAX_REQUEST_BYTES must be"),
        ({}, {"OTEL_BSP_MAX_QUEUE_SIZE": "-1"}, "OTEL_BSP_MAX_QUEUE_SIZE must be"),
        ({}, {"PROMPTRECORDER_MAX_QUEUE_BYTES": "0"}, "PROMPTRECORDER_MAX_QUEUE_BYTES must be"),
    ],
)
def test_bad_bounds_are_refused_at_once(
    monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, object], env: dict[str, str], match: str
) -> None:
    """A bad byte or span bound, as argument or variable, fails configure() with a message naming it."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=match):
        configure(exporter="none", **kwargs)  # type: ignore[arg-type]


def test_the_request_bound_variable_is_honoured(
    use_sender: Callable[[FakeSender], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """PROMPTRECORDER_MAX_REQUEST_BYTES bounds the requests when the argument is not given."""
    monkeypatch.setenv("PROMPTRECORDER_MAX_REQUEST_BYTES", "20000")
    sender = FakeSender()
    use_sender(sender)
    configure()
    record(20, text="z" * 3000)
    assert flush(timeout=10) is True
    assert len(sender.names()) == 20
    assert max(len(body) for body in sender.accepted) <= 20000


# --- refusals -----------------------------------------------------------------------------------


def refuse_if(name: str, result: SendResult) -> Callable[[bytes], SendResult]:
    return lambda body: result if any(name in each for each in names_in(body)) else ACCEPTED


INVALID = SendResult(False, False, True, "gRPC INVALID_ARGUMENT: bad span", status="INVALID_ARGUMENT")


def test_a_refused_batch_is_split_until_the_refused_span_is_alone(
    use_sender: Callable[[FakeSender], None], caplog: pytest.LogCaptureFixture
) -> None:
    """One poison span among 20: the 19 others arrive; it is set aside, counted, logged once with its trace id."""
    sender = FakeSender(refuse_if("poison", INVALID))
    use_sender(sender)
    configure()
    with caplog.at_level(logging.WARNING, logger="promptrecorder"):
        good = record(10, "a")
        with PromptRecorder("poison") as poison:
            poison_trace_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
        good += record(9, "b")
        assert flush(timeout=10) is False  # a span was lost, and flush says so
    assert sorted(sender.names()) == sorted([f"a{i}" for i in range(10)] + [f"b{i}" for i in range(9)])
    stats = delivery_stats()[0]
    assert (stats.exported_spans, stats.rejected_spans, stats.failed_spans) == (19, 1, 1)
    (line,) = [message for message in warnings_of(caplog) if "refused a span" in message]
    assert poison_trace_id in line
    assert "INVALID_ARGUMENT: bad span" in line
    assert poison.delivery.dropped == 1
    assert all(recorder.delivery.exported == 1 for recorder in good)


def test_a_request_over_the_receivers_limit_is_split_and_all_arrives(
    use_sender: Callable[[FakeSender], None],
) -> None:
    """A receiver with a smaller limit than ours answers 413: halves are sent until they fit."""
    too_large = SendResult(False, False, True, "HTTP 413 Request Entity Too Large", status=413)
    sender = FakeSender(lambda body: too_large if len(body) > 20_000 else ACCEPTED)
    use_sender(sender)
    configure()
    record(40, text="q" * 2000)
    assert flush(timeout=10) is True
    assert sorted(sender.names()) == sorted(f"s{i}" for i in range(40))
    assert delivery_stats()[0].rejected_spans == 0


def test_a_permanent_refusal_is_not_retried_and_names_its_cause(
    use_sender: Callable[[FakeSender], None], caplog: pytest.LogCaptureFixture
) -> None:
    """HTTP 401: one attempt, the batch counted as lost, the one warning says 401."""
    sender = FakeSender(lambda body: SendResult(False, False, False, "HTTP 401 Unauthorized", status=401))
    use_sender(sender)
    configure()
    with caplog.at_level(logging.WARNING, logger="promptrecorder"):
        record(5)
        assert flush(timeout=5) is False
    assert len(sender.attempts) == 1
    assert delivery_stats()[0].failed_spans == 5
    (line,) = warnings_of(caplog)
    assert (
        "could not deliver 5 spans to http://fake:4318/v1/traces (OTLP/HTTP): HTTP 401 Unauthorized" in line
    )


def test_partial_success_rejections_are_counted(use_sender: Callable[[FakeSender], None]) -> None:
    """An accepted request whose answer says 2 spans were rejected: 2 rejected, the rest exported."""
    partial = SendResult(True, False, False, "accepted; 2 spans rejected: too old", rejected_spans=2)
    use_sender(FakeSender(lambda body: partial))
    configure()
    record(5)
    assert flush(timeout=5) is False
    stats = delivery_stats()[0]
    assert (stats.exported_spans, stats.rejected_spans, stats.failed_spans) == (3, 2, 2)


# --- retries ------------------------------------------------------------------------------------


def test_transient_failures_are_retried_with_growing_jittered_pauses(
    use_sender: Callable[[FakeSender], None],
) -> None:
    """Two refusals then success: three attempts, pauses within [0.25, 0.5] then [0.5, 1.0] seconds."""
    answers = [REFUSED, REFUSED, ACCEPTED]
    sender = FakeSender(lambda body: answers.pop(0))
    use_sender(sender)
    configure(timeout=5)
    record(1)
    assert flush(timeout=10) is True
    first, second, third = (when for when, _, _ in sender.attempts)
    assert 0.25 <= second - first <= 0.6
    assert 0.5 <= third - second <= 1.1


def test_retry_after_is_honoured(use_sender: Callable[[FakeSender], None]) -> None:
    """A 429 asking for 0.05 s: the next attempt comes after about that, not the default back-off."""
    busy = SendResult(False, True, False, "HTTP 429 Too Many Requests", retry_after=0.05, status=429)
    answers = [busy, ACCEPTED]
    sender = FakeSender(lambda body: answers.pop(0))
    use_sender(sender)
    configure(timeout=5)
    record(1)
    assert flush(timeout=10) is True
    first, second = (when for when, _, _ in sender.attempts)
    assert 0.04 <= second - first < 0.25


def test_retries_stop_at_the_export_timeout_and_each_attempt_gets_only_the_time_left(
    use_sender: Callable[[FakeSender], None],
) -> None:
    """Always refused, timeout 1.5 s: attempts stop within it; none is given more time than remains."""
    sender = FakeSender(lambda body: REFUSED)
    use_sender(sender)
    configure(timeout=1.5)
    record(1)
    started = time.monotonic()
    assert flush(timeout=10) is False
    assert time.monotonic() - started < 2.5
    assert len(sender.attempts) >= 2
    first = sender.attempts[0][0]
    assert all(timeout <= 1.5 - (when - first) + 0.05 for when, _, timeout in sender.attempts)
    assert delivery_stats()[0].failed_spans == 1


# --- messages -----------------------------------------------------------------------------------


def test_the_outage_lines_name_the_cause_and_quote_delivery_stats(
    use_sender: Callable[[FakeSender], None],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Collector refusing connections, queue of 4 full: the lines blame the refused connection, not the
    queue; the recovery line's numbers are delivery_stats()'s."""
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "4")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2")
    up = threading.Event()

    def answer(body: bytes) -> SendResult:
        if up.is_set():
            return ACCEPTED
        time.sleep(0.05)  # a refusal takes a moment: the queue fills meanwhile
        return REFUSED

    sender = FakeSender(answer)
    use_sender(sender)
    configure(timeout=0.2)
    with caplog.at_level(logging.WARNING, logger="promptrecorder"):
        record(2, "first")
        while delivery_stats()[0].last_error is None:  # the first refusal comes before the queue fills
            time.sleep(0.01)
        record(28, "down")
        flush(timeout=5)
        up.set()
        record(1, "back")
        flush(timeout=5)
    lines = warnings_of(caplog)
    assert "could not deliver" in lines[0]
    assert "connection refused" in lines[0]
    queue_lines = [line for line in lines if "queue" in line and "is full" in line]
    assert queue_lines
    assert all("connection refused" in line for line in queue_lines)
    assert not any("faster than they can be sent" in line for line in lines)
    (recovery,) = [line for line in lines if "recovered" in line]
    stats = delivery_stats()[0]
    assert stats.failed_spans == 30
    assert (
        f"30 spans were not delivered during the outage. In all (delivery_stats()): failed_spans={stats.failed_spans}"
        in (recovery)
    )
    assert f"queue_dropped_spans={stats.queue_dropped_spans}" in recovery


def test_exit_with_a_collector_that_never_answers_takes_about_shutdown_timeout(
    use_sender: Callable[[FakeSender], None],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each attempt waits its whole timeout: shutdown(1.5 s) ends within it (plus scheduling), and
    the exit line (for the spans the first line did not name) quotes delivery_stats()."""
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1")

    def never_answers(body: bytes) -> SendResult:
        time.sleep(sender.attempts[-1][2])
        return SendResult(False, True, False, "timed out after waiting for an answer")

    sender = FakeSender(never_answers)
    use_sender(sender)
    configure(timeout=10, shutdown_timeout=1.5)
    record(3)
    with caplog.at_level(logging.WARNING, logger="promptrecorder"):
        started = time.monotonic()
        shutdown()
        took = time.monotonic() - started
    assert 1.2 <= took <= 2.2, took
    stats = delivery_stats()[0]
    assert stats.failed_spans == 3
    (exit_line,) = [line for line in warnings_of(caplog) if "at shutdown," in line]
    assert (
        f"0 spans were delivered to http://fake:4318/v1/traces (OTLP/HTTP) and {stats.failed_spans} were lost"
        in (exit_line)
    )


# --- after shutdown -----------------------------------------------------------------------------


def test_a_span_after_shutdown_is_counted_warned_once_and_configure_brings_delivery_back(
    use_sender: Callable[[FakeSender], None], caplog: pytest.LogCaptureFixture
) -> None:
    """configure(), shutdown(), then recording: counted as dropped, one warning, flush() False;
    a second configure() delivers again."""
    sender = FakeSender()
    use_sender(sender)
    configure()
    shutdown()
    with caplog.at_level(logging.WARNING, logger="promptrecorder"):
        (late, *_) = record(3, "late")
        assert flush(timeout=2) is False
    assert sender.names() == []
    stats = delivery_stats()[0]
    assert (stats.shutdown_dropped_spans, stats.failed_spans) == (3, 3)
    assert late.delivery.dropped == 1
    (line,) = warnings_of(caplog)
    assert "ended after shutdown()" in line
    assert "configure()" in line
    again = FakeSender()
    use_sender(again)
    configure()
    record(1, "again")
    assert flush(timeout=5) is True
    assert again.names() == ["again0"]


# --- fork -------------------------------------------------------------------------------------


def _wait_for_child(pid: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError("the forked child did not finish in time")


@pytest.fixture
def no_fork_warning() -> Iterator[None]:
    # Python warns about fork() in a process with threads (ours are daemon senders); the child
    # here touches only our own code, whose locks are renewed after the fork.
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*fork.*")
        yield


@pytest.mark.usefixtures("no_fork_warning")
def test_a_child_forked_mid_export_delivers_its_own_spans_only(
    use_sender: Callable[[FakeSender], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parent's worker is stuck in a send when fork() runs: the child's pipeline is its own,
    flushes in time, sends only its spans, and reports only its own counts."""
    release = threading.Event()
    parent = FakeSender(lambda body: ACCEPTED if release.wait(20) else REFUSED)
    use_sender(parent)
    configure()
    record(5, "parent")
    flushing = threading.Thread(target=flush, kwargs={"timeout": 0.2})
    flushing.start()
    flushing.join()
    while not parent.attempts:  # the worker is inside send(), holding what it holds
        time.sleep(0.01)
    child_sender = FakeSender()
    use_sender(child_sender)  # what build_sender gives the child
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            record(4, "child")
            ok = flush(timeout=5)
            stats = delivery_stats()[0]
            names = sorted(child_sender.names())
            if (
                ok
                and names == [f"child{i}" for i in range(4)]
                and stats.exported_spans == 4
                and stats.failed_spans == 0
            ):
                code = 0
            else:
                code = 2
        finally:
            os._exit(code)
    try:
        assert _wait_for_child(pid) == 0
    finally:
        release.set()
    assert flush(timeout=5) is True
    assert sorted(parent.names()) == sorted(f"parent{i}" for i in range(5))


@pytest.mark.usefixtures("no_fork_warning")
def test_a_forked_child_spools_under_its_own_pid_and_drains_its_own_files(
    use_sender: Callable[[FakeSender], None], tmp_path: Path
) -> None:
    """Parent and child spool to one directory: the child's files carry its pid, it re-sends them
    when the collector is back, and the parent's files are left to the parent."""
    up = threading.Event()
    sender = FakeSender(lambda body: ACCEPTED if up.is_set() else REFUSED)
    use_sender(sender)
    configure(spool_dir=tmp_path, timeout=0.2)
    record(2, "parent")
    assert flush(timeout=1) is False
    parent_files = sorted(path.name for path in tmp_path.glob("*.otlp"))
    assert parent_files
    assert all(f"-p{os.getpid()}-" in name for name in parent_files)
    child_up = threading.Event()
    child_sender = FakeSender(lambda body: ACCEPTED if child_up.is_set() else REFUSED)
    use_sender(child_sender)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            record(3, "child")
            flush(timeout=1)
            mine = [path.name for path in tmp_path.glob(f"*-p{os.getpid()}-*.otlp")]
            child_up.set()
            delivered = flush(timeout=5)
            theirs_left = sorted(path.name for path in tmp_path.glob(f"*-p{os.getppid()}-*.otlp"))
            names = sorted(child_sender.names())
            code = (
                0
                if (
                    mine
                    and delivered
                    and names == ["child0", "child1", "child2"]
                    and theirs_left == parent_files
                )
                else 2
            )
        finally:
            os._exit(code)
    assert _wait_for_child(pid) == 0
    assert not list(tmp_path.glob(f"*-p{pid}-*.otlp"))  # the child drained its own files
    up.set()
    assert flush(timeout=5) is True
    assert sorted(sender.names()) == ["parent0", "parent1"]


# --- credentials --------------------------------------------------------------------------------


def test_an_endpoint_password_never_reaches_the_log(caplog: pytest.LogCaptureFixture) -> None:
    """configure(endpoint='http://u:PW@...'), an outage, and shutdown: no line carries the password."""
    with caplog.at_level(logging.DEBUG, logger="promptrecorder"):
        configure(endpoint="http://user:S3cretPW@127.0.0.1:9", timeout=0.3, shutdown_timeout=1)
        record(1)
        flush(timeout=2)
        shutdown()
    assert "S3cretPW" not in caplog.text
    assert "http://user:***@127.0.0.1:9" in caplog.text


def test_a_malformed_header_string_is_refused_without_quoting_the_token() -> None:
    """headers='authorization: Bearer T' (a colon, not '='): ValueError naming the fix, not the token."""
    with pytest.raises(ValueError, match="`headers` must be") as error:
        configure(headers="authorization: Bearer S3cretT0ken")
    assert "S3cretT0ken" not in str(error.value)
    assert "'authorization=<value>'" in str(error.value)


# --- the spool never blocks on a file ------------------------------------------------------------


def spool_batches(directory: Path, *batches: list[str]) -> list[str]:
    """Spool files as an earlier process left them: one per list of span names; their file names."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from promptrecorder.export.otlp_encode import encode_request
    from promptrecorder.export.spool import Spool

    memory = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    spool = Spool.acquire(directory, max_bytes=1 << 24)
    names = []
    for batch in batches:
        memory.clear()
        for name in batch:
            provider.get_tracer("t").start_span(name).end()
        entry = spool.append(encode_request(memory.get_finished_spans()), len(batch))
        assert entry is not None
        names.append(entry.name)
    spool.release()
    return names


def test_a_spooled_file_with_a_poison_span_is_split_and_the_rest_flows(
    use_sender: Callable[[FakeSender], None], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A spooled file of 8 spans, one refused on its own, then another file: 7 + 2 arrive, in order;
    the refused span is kept beside it as *.rejected, counted, and logged once with its trace id."""
    first, _ = spool_batches(
        tmp_path,
        [f"old{i}" for i in range(3)] + ["poison"] + [f"old{i}" for i in range(3, 7)],
        ["next0", "next1"],
    )
    sender = FakeSender(refuse_if("poison", INVALID))
    use_sender(sender)
    with caplog.at_level(logging.WARNING, logger="promptrecorder"):
        configure(spool_dir=tmp_path)
        assert flush(timeout=10) is False  # one span was refused
    assert sender.names() == [f"old{i}" for i in range(7)] + ["next0", "next1"]
    stats = delivery_stats()[0]
    assert (stats.exported_spans, stats.rejected_spans, stats.spool_backlog_spans) == (9, 1, 0)
    (kept,) = tmp_path.glob("*.rejected")
    assert kept.name.startswith(first)
    assert names_in(kept.read_bytes()) == ["poison"]
    (line,) = [message for message in warnings_of(caplog) if "refused a span" in message]
    assert "INVALID_ARGUMENT" in line
    assert str(kept) in line


def test_a_spooled_file_refused_for_good_is_set_aside_and_the_files_behind_flow(
    use_sender: Callable[[FakeSender], None], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """HTTP 403 for one file (not a refusal a smaller request may pass): renamed *.rejected, counted,
    one line; the next file is delivered, and a later process does not see the set-aside one again."""
    forbidden = SendResult(False, False, False, "HTTP 403 Forbidden", status=403)
    blocked, _ = spool_batches(tmp_path, ["blocked0", "blocked1"], ["behind0"])
    sender = FakeSender(refuse_if("blocked", forbidden))
    use_sender(sender)
    with caplog.at_level(logging.WARNING, logger="promptrecorder"):
        configure(spool_dir=tmp_path)
        assert flush(timeout=10) is False
    assert sender.names() == ["behind0"]
    assert (tmp_path / f"{blocked}.rejected").exists()
    stats = delivery_stats()[0]
    assert (stats.rejected_spans, stats.failed_spans, stats.spool_backlog_spans) == (2, 2, 0)
    lines = [message for message in warnings_of(caplog) if "set aside" in message]
    assert len(lines) == 1
    assert "HTTP 403 Forbidden" in lines[0]
    assert "the batches behind it carry on" in lines[0]


def test_a_spooled_file_too_big_for_the_receiver_is_split_until_it_fits(
    use_sender: Callable[[FakeSender], None], tmp_path: Path
) -> None:
    """A 413 for a file (its batch was bigger than the receiver takes): halves until they fit; all arrive."""
    too_large = SendResult(False, False, True, "HTTP 413 Request Entity Too Large", status=413)
    spool_batches(tmp_path, [f"big{i}" for i in range(16)])
    sender = FakeSender(lambda body: too_large if len(names_in(body)) > 3 else ACCEPTED)
    use_sender(sender)
    configure(spool_dir=tmp_path)
    assert flush(timeout=10) is True
    assert sender.names() == [f"big{i}" for i in range(16)]
    assert list(tmp_path.glob("*.otlp*")) == []


def test_a_file_cut_short_by_an_outage_keeps_only_what_was_not_delivered(
    use_sender: Callable[[FakeSender], None], tmp_path: Path
) -> None:
    """A file split in halves whose second half meets an outage: the file is rewritten to hold only
    that half, so nothing is sent twice when the collector is back."""
    too_large = SendResult(False, False, True, "HTTP 413 Request Entity Too Large", status=413)
    spool_batches(tmp_path, [f"s{i}" for i in range(4)])
    down = threading.Event()

    def answer(body: bytes) -> SendResult:
        names = names_in(body)
        if len(names) > 2:
            return too_large
        if names == ["s0", "s1"]:
            down.set()  # the collector goes away right after the first half
            return ACCEPTED
        return REFUSED if down.is_set() and not up.is_set() else ACCEPTED

    up = threading.Event()
    sender = FakeSender(answer)
    use_sender(sender)
    configure(spool_dir=tmp_path)
    assert flush(timeout=1) is False
    (left,) = tmp_path.glob("*.otlp")
    assert names_in(left.read_bytes()) == ["s2", "s3"]
    assert "-2-" in left.name  # the span count in its name
    up.set()
    assert flush(timeout=10) is True
    assert sender.names() == ["s0", "s1", "s2", "s3"]


def test_a_bug_while_sending_loses_its_batch_not_the_worker(
    use_sender: Callable[[FakeSender], None],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """deliver() raising once (a bug of ours): that batch is counted as failed, said once, and the
    worker goes on delivering the next."""
    from promptrecorder.export.delivery import Delivery

    sender = FakeSender()
    use_sender(sender)
    configure()
    real = Delivery.deliver
    calls: list[int] = []

    def broken_once(self: Delivery, *args: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Delivery, "deliver", broken_once)
    with caplog.at_level(logging.WARNING, logger="promptrecorder"):
        record(2, "lost")
        assert flush(timeout=5) is False
        record(1, "kept")
        assert flush(timeout=5) is True
    assert sender.names() == ["kept0"]
    assert delivery_stats()[0].failed_spans == 2
    assert any("failed unexpectedly: RuntimeError('a bug')" in line for line in warnings_of(caplog))
