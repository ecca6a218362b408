"""Delivery when the collector fails, against real OTLP receivers on 127.0.0.1.

The faults: the collector down at start; down for a stretch in the middle of a steady
stream and back on the same port; slow to answer; answering errors; the process killed
with SIGKILL mid-run and started again. With a spool every record arrives exactly once;
without, the loss is counted, per recorder too, and said in one line. In every case the
application's ``with recorder:`` blocks never raise and never wait on the collector.

Exporters here get ``timeout=1``: against a closed port the stock exporters then fail at
once instead of retrying for ~6 s (measured; see bench/README.md), which keeps this file
fast. Every test is bounded and stops what it starts.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from promptrecorder import (
    PromptRecorder,
    autorecord,
    configure,
    delivery_stats,
    flush,
    shutdown,
)
from promptrecorder.recording import semconv
from promptrecorder.recording.ledger import DeliverySummary

from .receivers import FailingHttpReceiver, GrpcReceiver, HttpReceiver, Receiver, unused_port

pytestmark = pytest.mark.usefixtures("global_tracing")

# The most one `with recorder:` block (one pair recorded) may take while the collector
# misbehaves. Recording never waits on the network or the disk; this bound is generous
# for a shared 2-core machine.
APP_BOUND_S = 0.25

PROTOCOLS = pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"], ids=["grpc", "http"])


def _receiver(protocol: str, port: int = 0) -> Receiver:
    return GrpcReceiver(port) if protocol == "grpc" else HttpReceiver(port)


def _configure(protocol: str, port: int, spool: Path | None, **kwargs: Any) -> None:
    configure(
        endpoint=f"http://127.0.0.1:{port}",
        protocol=protocol,
        timeout=kwargs.pop("timeout", 1),
        spool_dir=spool,
        **kwargs,
    )


class App:
    """The application: one recorder per request, one pair each (two spans: the recorder's and the
    pair's call span); remembers ids and the slowest block."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.recorders: list[PromptRecorder] = []
        self.slowest = 0.0

    def requests(self, count: int, every: float = 0.0) -> None:
        for _ in range(count):
            started = time.perf_counter()
            with PromptRecorder("request") as recorder:
                record = autorecord(f"prompt {len(self.ids)}", "response", model="m")
            self.slowest = max(self.slowest, time.perf_counter() - started)
            assert record is not None
            self.ids.append(record.id)
            self.recorders.append(recorder)
            if every:
                time.sleep(every)

    def summaries(self) -> Counter[DeliverySummary]:
        return Counter(recorder.delivery for recorder in self.recorders)


def _received_ids(receiver: Receiver) -> Counter[str]:
    """How many times each record id arrived (from the prompt events)."""
    return Counter(
        str(event.attributes[semconv.RECORD_ID])
        for span in receiver.spans()
        for event in span.events
        if event.name == semconv.EVENT_PROMPT
    )


def _assert_exactly_once(receiver: Receiver, ids: list[str]) -> None:
    received = _received_ids(receiver)
    duplicated = {record_id: count for record_id, count in received.items() if count > 1}
    assert not duplicated, f"{len(duplicated)} records arrived more than once"
    assert set(received) == set(ids), f"{len(set(ids) - set(received))} of {len(ids)} records missing"
    span_ids = [span.span_id for span in receiver.spans()]
    assert len(span_ids) == len(set(span_ids))


# --- the collector down at start ------------------------------------------------------------------


@PROTOCOLS
def test_down_at_start_with_a_spool_everything_arrives_once_when_it_starts(
    protocol: str, tmp_path: Path
) -> None:
    """Nothing listens yet: spans wait in the spool; the collector starts: each record arrives once."""
    port = unused_port()
    _configure(protocol, port, tmp_path)
    app = App()
    app.requests(40)
    assert flush(timeout=1) is False
    assert delivery_stats()[0].spool_backlog_spans == 80
    assert app.summaries() == Counter({DeliverySummary(spooled=2): 40})
    with _receiver(protocol, port) as receiver:
        assert flush(timeout=10) is True
        _assert_exactly_once(receiver, app.ids)
        shutdown()
    assert app.summaries() == Counter({DeliverySummary(exported=2): 40})
    assert app.slowest < APP_BOUND_S


@PROTOCOLS
def test_down_at_start_without_a_spool_the_loss_is_counted_and_said_once(
    protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    """No spool: the spans are lost, and every one is counted, per recorder, with one warning."""
    port = unused_port()
    _configure(protocol, port, None)
    app = App()
    with caplog.at_level(logging.WARNING):
        app.requests(40)
        assert flush(timeout=5) is False
    stats = delivery_stats()[0]
    assert (stats.exported_spans, stats.failed_spans) == (0, 80)
    assert app.summaries() == Counter({DeliverySummary(dropped=2): 40})
    ours = [record.getMessage() for record in caplog.records if record.name.startswith("promptrecorder")]
    assert len(ours) == 1, ours
    assert f"could not deliver 80 spans to http://127.0.0.1:{port}" in ours[0]
    assert not [record for record in caplog.records if record.exc_info]
    assert app.slowest < APP_BOUND_S


# --- down for a stretch, back on the same port ---------------------------------------------------


def _outage_mid_stream(receiver: Receiver, app: App, outage_s: float = 1.0) -> None:
    """Stream requests; stop the collector for ``outage_s``; restart it on its port; stream on
    until spans arrive there again; stop the stream."""
    errors: list[BaseException] = []
    stop = threading.Event()

    def stream() -> None:
        try:
            while not stop.is_set():
                app.requests(1, every=0.01)
        except BaseException as error:  # surfaced below, never swallowed
            errors.append(error)

    thread = threading.Thread(target=stream, name="app-stream")
    thread.start()
    try:
        receiver.wait_for_spans(1, timeout=10)
        receiver.stop(grace=1)  # a collector shutting down finishes what it was answering
        time.sleep(outage_s)
        arrived_before = len(receiver.spans())
        receiver.start()  # same port, same store
        receiver.wait_for_spans(arrived_before + 1, timeout=15)
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join(10)
    assert not errors


@PROTOCOLS
def test_an_outage_mid_stream_loses_nothing_with_a_spool(
    protocol: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Steady stream; the collector stops for a second and comes back on its port: all arrive, once."""
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")  # batches leave every 50 ms
    port = unused_port()
    app = App()
    with _receiver(protocol, port) as receiver:
        _configure(protocol, port, tmp_path)
        _outage_mid_stream(receiver, app, outage_s=2.5)  # longer than one export rides out
        assert flush(timeout=15) is True
        _assert_exactly_once(receiver, app.ids)
        stats = delivery_stats()[0]
        shutdown()
    assert stats.spooled_spans > 0  # the outage was real: something went through the spool
    assert stats.failed_spans == 0
    assert app.summaries() == Counter({DeliverySummary(exported=2): len(app.ids)})
    assert app.slowest < APP_BOUND_S


@PROTOCOLS
def test_an_outage_mid_stream_without_a_spool_is_counted_exactly(
    protocol: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No spool: what arrived plus what was counted lost is everything produced, and it is said."""
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    port = unused_port()
    app = App()
    with caplog.at_level(logging.WARNING), _receiver(protocol, port) as receiver:
        _configure(protocol, port, None)
        # Longer than one export can take (timeout=1 plus a retry's back-off), so that the
        # stock exporter cannot simply ride the outage out and loss is certain.
        _outage_mid_stream(receiver, app, outage_s=2.5)
        assert flush(timeout=10) is False  # spans were lost since configure()
        assert flush(timeout=10) is True  # and none since that flush: delivery recovered
        received = _received_ids(receiver)
        arrived_spans = len(receiver.spans())
        stats = delivery_stats()[0]
        shutdown()
    lost = sum(summary.dropped * count for summary, count in app.summaries().items())
    assert lost == stats.failed_spans > 0
    assert max(received.values()) == 1
    assert arrived_spans + lost == 2 * len(app.ids)  # a recorder span and a call span per request
    assert len(received) <= len(app.ids)
    assert all(summary.pending == 0 for summary in app.summaries())
    messages = [record.getMessage() for record in caplog.records if record.name.startswith("promptrecorder")]
    assert len(messages) == 2, messages
    assert "could not deliver" in messages[0]
    assert f"recovered; {lost} spans were not delivered during the outage" in messages[1]
    assert app.slowest < APP_BOUND_S


# --- slow to answer ---------------------------------------------------------------------------------


def _slow(receiver: Receiver, delay: float) -> Receiver:
    """Make ``receiver`` sleep ``delay`` seconds before it takes (and answers) each request."""
    store = receiver._store
    handle: Callable[[Any, Mapping[str, Any]], None] = store.handle_trace

    def slowly(request: Any, headers: Mapping[str, Any]) -> None:
        time.sleep(delay)
        handle(request, headers)

    store.handle_trace = slowly  # type: ignore[method-assign]
    return receiver


@PROTOCOLS
def test_a_slow_collector_never_slows_the_application(protocol: str, tmp_path: Path) -> None:
    """Each answer takes 0.4 s: the blocks stay fast, and every record arrives once."""
    with _slow(_receiver(protocol), delay=0.4) as receiver:
        _configure(protocol, receiver.port, tmp_path, timeout=5)
        app = App()
        app.requests(60, every=0.005)
        assert flush(timeout=15) is True
        _assert_exactly_once(receiver, app.ids)
        shutdown()
    assert app.slowest < APP_BOUND_S


def test_a_collector_slower_than_the_timeout_costs_the_application_nothing(tmp_path: Path) -> None:
    """Answers take longer than the export timeout: blocks stay fast, flush() and exit keep their bounds."""
    with _slow(HttpReceiver(), delay=1.5) as receiver:
        _configure("http/protobuf", receiver.port, tmp_path, timeout=0.5)
        app = App()
        app.requests(30)
        started = time.monotonic()
        assert flush(timeout=1) is False  # not yet answered: not claimed delivered
        shutdown(timeout=1)
        assert time.monotonic() - started < 5
    assert app.slowest < APP_BOUND_S
    # A request the collector took after the client gave up on it may arrive twice later:
    # the spool is at-least-once in that window (README, "Durable delivery").


class _TricklingCollector:
    """An HTTP server on 127.0.0.1 that reads each request whole, then answers one byte every
    ``every`` seconds: each read of the client's returns within its read timeout, so the send as
    a whole has no bound of its own. Stops its threads itself at ``close()``."""

    _ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"

    def __init__(self, every: float) -> None:
        self.every = every
        self.closed = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.listener.settimeout(0.1)
        self.thread = threading.Thread(target=self._serve, name="trickling-collector", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.closed.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(5)
            try:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += connection.recv(65536)
                for byte in self._ANSWER:
                    if self.closed.wait(self.every):
                        return
                    connection.sendall(bytes((byte,)))
            except OSError:
                return

    def close(self) -> None:
        self.closed.set()
        self.thread.join(timeout=5)
        self.listener.close()


def test_a_collector_that_trickles_its_answer_costs_the_application_nothing(tmp_path: Path) -> None:
    """One byte every 0.4 s, so no single read times out: blocks stay fast, and flush() and
    shutdown() return within their own timeouts, not when the answer ends (~30 s)."""
    collector = _TricklingCollector(every=0.4)
    try:
        _configure("http/protobuf", collector.port, None, timeout=0.5)
        app = App()
        app.requests(10)
        started = time.monotonic()
        assert flush(timeout=1) is False
        assert time.monotonic() - started < 2
        started = time.monotonic()
        shutdown(timeout=1)
        assert time.monotonic() - started < 2
    finally:
        collector.close()
    assert app.slowest < APP_BOUND_S


# --- answering errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options", [{"status": 500}, {"status": 503, "retry_after": "0"}], ids=["500", "503-retry"]
)
def test_errors_then_recovery_with_a_spool_every_record_arrives_once(
    options: dict[str, Any], tmp_path: Path
) -> None:
    """The collector answers 500/503: nothing is lost; a healthy one on that port then gets all, once."""
    port = unused_port()
    app = App()
    with FailingHttpReceiver(port=port, **options) as failing:
        _configure("http/protobuf", port, tmp_path)
        app.requests(30)
        assert flush(timeout=2) is False
        assert failing.request_count >= 1
    stats = delivery_stats()[0]
    assert (stats.failed_spans, stats.spool_backlog_spans) == (0, 60)
    assert stats.last_error is not None
    with HttpReceiver(port) as receiver:
        assert flush(timeout=10) is True
        _assert_exactly_once(receiver, app.ids)
        shutdown()
    assert app.slowest < APP_BOUND_S


def test_errors_without_a_spool_are_counted_per_recorder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 500 without a spool: each recorder says its span was dropped; one plain warning."""
    with caplog.at_level(logging.WARNING), FailingHttpReceiver(status=500) as failing:
        _configure("http/protobuf", failing.port, None)
        app = App()
        app.requests(10)
        assert flush(timeout=5) is False
        shutdown()
    assert app.summaries() == Counter({DeliverySummary(dropped=2): 10})
    ours = [record.getMessage() for record in caplog.records if record.name.startswith("promptrecorder")]
    assert len(ours) == 1
    assert "could not deliver 20 spans" in ours[0]


# --- killed with SIGKILL, started again --------------------------------------------------------------

_KILLED = """
    import sys
    from promptrecorder import PromptRecorder, autorecord, configure, delivery_stats, flush
    configure(endpoint=sys.argv[1], protocol=sys.argv[2], spool_dir=sys.argv[3], timeout=1)
    produced = 0
    while True:
        ids = []
        for _ in range(25):
            with PromptRecorder("before-the-kill"):  # one span per record
                ids.append(autorecord("prompt", "response").id)
        produced += len(ids)
        print("produced", *ids, flush=True)
        flush(timeout=0.3)  # the collector is down: this puts them on disk
        if delivery_stats()[0].spooled_spans >= produced:  # every span so far is on disk
            print("durable", produced, flush=True)
"""

_RESTARTED = """
    import sys
    from promptrecorder import configure, flush
    configure(endpoint=sys.argv[1], protocol=sys.argv[2], spool_dir=sys.argv[3], timeout=1)
    print("delivered" if flush(timeout=20) else "NOT delivered", flush=True)
"""


def _python(code: str, *args: str) -> tuple[list[str], dict[str, str]]:
    """The command running ``code`` in a fresh interpreter, and an environment without OTEL_* settings."""
    clean = {
        key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "PROMPTRECORDER_"))
    }
    return [sys.executable, "-c", textwrap.dedent(code), *args], clean


@PROTOCOLS
def test_killed_with_sigkill_then_restarted_every_spooled_record_arrives_once(
    protocol: str, tmp_path: Path
) -> None:
    """A process spooling against a dead collector is SIGKILLed mid-run; the next one delivers it all, once."""
    port = unused_port()
    endpoint = f"http://127.0.0.1:{port}"
    command, env = _python(_KILLED, endpoint, protocol, str(tmp_path))
    produced: list[str] = []
    durable: list[str] = []
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout is not None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                line = child.stdout.readline().split()
                if not line:
                    break
                if line[0] == "produced":
                    produced.extend(line[1:])
                elif line[0] == "durable":
                    durable = produced[: int(line[1])]
                    if len(durable) >= 75:
                        break
            # Kill it while it is producing the next round: some records are then only in
            # memory, and a SIGKILL takes them with it (no process can keep those).
            time.sleep(0.05)
            child.send_signal(signal.SIGKILL)
            rest = child.stdout.read()  # to EOF: the buffered lines too
        finally:
            child.kill()
            child.communicate(timeout=10)
        assert child.returncode == -signal.SIGKILL
    for line in rest.splitlines():  # what it produced after we stopped reading
        if line.startswith("produced "):
            produced.extend(line.split()[1:])
    assert len(durable) >= 75
    assert any(name.endswith(".otlp") for name in os.listdir(tmp_path))

    with _receiver(protocol, port) as receiver:
        command, env = _python(_RESTARTED, endpoint, protocol, str(tmp_path))
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "delivered", result.stderr
        received = _received_ids(receiver)
    assert max(received.values()) == 1, "a record arrived twice"
    assert set(durable) <= set(received), f"{len(set(durable) - set(received))} spooled records missing"
    assert set(received) <= set(produced)
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".otlp")]


@pytest.fixture(autouse=True)
def _no_fault_test_leaves_threads() -> Iterator[None]:
    """Every receiver, stream and drain thread a test starts is gone when it ends."""
    before = {thread.ident for thread in threading.enumerate()}
    yield
    shutdown()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        extra = [
            thread
            for thread in threading.enumerate()
            if thread.ident not in before and thread.name.startswith(("app-stream", "promptrecorder-spool"))
        ]
        if not extra:
            return
        time.sleep(0.05)
    raise AssertionError(f"threads left running: {[thread.name for thread in extra]}")
