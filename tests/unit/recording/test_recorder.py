"""PromptRecorder and autorecord against an in-memory exporter."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from promptrecorder import PromptRecord, PromptRecorder, autorecord, current_recorder
from promptrecorder.recording import semconv
from tests.conftest import Tracing
from tests.unit.metrics_capture import capture_metrics


def _hex_ids(span: trace.Span | object) -> tuple[str, str]:
    context = span.get_span_context()  # type: ignore[attr-defined]
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


# --- the span of a block ------------------------------------------------------------


def test_entering_starts_a_current_internal_span_named_after_the_recorder(tracing: Tracing) -> None:
    """Inside the block the recorder's span is current and carries the workflow attributes."""
    recorder = PromptRecorder("triage", attributes={"team": "support"}, tracer_provider=tracing.provider)
    with recorder as entered:
        assert entered is recorder
        assert current_recorder() is recorder
        current = trace.get_current_span()
        assert current.is_recording()
        assert tracing.spans() == []  # not ended yet
    span = tracing.span("invoke_workflow triage")
    assert span.kind is SpanKind.INTERNAL
    assert span.status.status_code is StatusCode.UNSET
    assert _hex_ids(current) == _hex_ids(span)
    assert dict(span.attributes or {}) == {
        "team": "support",
        semconv.GEN_AI_OPERATION_NAME: "invoke_workflow",
        semconv.GEN_AI_WORKFLOW_NAME: "triage",
        semconv.OPENINFERENCE_SPAN_KIND: "CHAIN",
        semconv.RECORD_COUNT: 0,
    }


def test_an_exception_in_the_block_marks_the_span_and_propagates_unchanged(tracing: Tracing) -> None:
    """The very exception object reaches the caller; the span has ERROR and the exception event."""
    recorder = PromptRecorder("failing", tracer_provider=tracing.provider)
    error = KeyError("ticket 42")
    with pytest.raises(KeyError) as raised, recorder:
        autorecord("p", "r")
        raise error
    assert raised.value is error
    span = tracing.span("invoke_workflow failing")
    assert span.status.status_code is StatusCode.ERROR
    assert "KeyError" in (span.status.description or "")
    assert span.attributes is not None
    assert span.attributes[semconv.ERROR_TYPE] == "KeyError"
    assert [event.name for event in span.events] == [
        semconv.EVENT_PROMPT,
        semconv.EVENT_RESPONSE,
        "exception",
    ]
    assert len(recorder) == 1  # what was recorded before the error is kept


def test_entering_again_starts_a_new_span_and_records_accumulate(tracing: Tracing) -> None:
    """The same recorder can be used for several blocks; each is its own span."""
    recorder = PromptRecorder("again", tracer_provider=tracing.provider)
    with recorder:
        first = autorecord("one", "1")
    with recorder:
        second = autorecord("two", "2")
    assert first is not None
    assert second is not None
    spans = tracing.spans()
    assert [span.name for span in spans] == ["chat", "invoke_workflow again"] * 2
    assert first.span_id != second.span_id
    assert recorder.prompts_and_responses == [
        {"prompt": "one", "response": "1"},
        {"prompt": "two", "response": "2"},
    ]


def test_async_with_works_like_with(tracing: Tracing) -> None:
    """`async with recorder:` sets the recorder and the span the same way."""

    async def session() -> PromptRecorder:
        async with PromptRecorder("async", tracer_provider=tracing.provider) as recorder:
            assert current_recorder() is recorder
            autorecord("p", "r")
        assert current_recorder() is None
        return recorder

    recorder = asyncio.run(session())
    assert len(recorder) == 1
    assert len(tracing.span("invoke_workflow async").events) == 2


# --- autorecord -----------------------------------------------------------------------


def test_autorecord_without_a_recorder_does_nothing_and_returns_none() -> None:
    """No active recorder: nothing is kept, and arguments are not even looked at."""
    assert autorecord("p", "r") is None
    assert autorecord(b"not checked", 42) is None  # type: ignore[arg-type]
    assert current_recorder() is None


def test_autorecord_adds_a_prompt_and_a_response_event_with_genai_attributes(tracing: Tracing) -> None:
    """Each pair is two events: timestamps at start and end, text, messages, model, usage, a shared id."""
    started = datetime(2026, 11, 24, 9, 0, 0, 250_000, tzinfo=timezone.utc)
    ended = started + timedelta(seconds=1.5)
    with PromptRecorder("events", tracer_provider=tracing.provider) as recorder:
        record = autorecord(
            "Summarise ticket 42",
            "The printer is on fire.",
            model="gpt-4o-mini",
            started_at=started,
            ended_at=ended,
            input_tokens=12,
            output_tokens=7,
            metadata={"ticket": 42},
            channel="email",
        )
    assert record is not None
    prompt_event, response_event = tracing.span("invoke_workflow events").events
    assert prompt_event.name == semconv.EVENT_PROMPT
    assert response_event.name == semconv.EVENT_RESPONSE
    assert prompt_event.timestamp == int(started.timestamp()) * 10**9 + 250_000_000
    assert response_event.timestamp == prompt_event.timestamp + 1_500_000_000
    assert dict(prompt_event.attributes or {}) == {
        semconv.RECORD_ID: record.id,
        semconv.PROMPT_TEXT: "Summarise ticket 42",
        semconv.GEN_AI_INPUT_MESSAGES: json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": "Summarise ticket 42"}]}],
            separators=(",", ":"),
        ),
        semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
        semconv.USAGE_INPUT_TOKENS: 12,
        "promptrecorder.metadata.ticket": 42,
        "promptrecorder.metadata.channel": "email",
    }
    assert dict(response_event.attributes or {}) == {
        semconv.RECORD_ID: record.id,
        semconv.RESPONSE_TEXT: "The printer is on fire.",
        semconv.GEN_AI_OUTPUT_MESSAGES: json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": "The printer is on fire."}]}],
            separators=(",", ":"),
        ),
        semconv.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini",
        semconv.USAGE_OUTPUT_TOKENS: 7,
    }
    assert recorder.records == [record]
    assert record.started_at == started
    assert record.ended_at == ended
    assert record.latency_s == 1.5
    assert dict(record.metadata) == {"ticket": 42, "channel": "email"}


def test_the_record_carries_the_ids_of_the_span_its_events_went_to(tracing: Tracing) -> None:
    """trace_id and span_id are lowercase hex and match the exported span."""
    with PromptRecorder("ids", tracer_provider=tracing.provider):
        record = autorecord("p", "r")
    assert record is not None
    assert (record.trace_id, record.span_id) == _hex_ids(tracing.span("invoke_workflow ids"))
    assert record.recorder == "ids"


def test_without_timestamps_both_events_are_stamped_now(tracing: Tracing) -> None:
    """The response event is stamped at the call; the prompt event shares it when no start is known."""
    before = datetime.now(timezone.utc)
    with PromptRecorder("now", tracer_provider=tracing.provider):
        record = autorecord("p", "r")
    after = datetime.now(timezone.utc)
    assert record is not None
    assert record.started_at is None
    assert before <= record.ended_at <= after
    prompt_event, response_event = tracing.span("invoke_workflow now").events
    assert prompt_event.timestamp == response_event.timestamp


def test_a_message_list_prompt_keeps_the_list_and_records_the_last_user_text(tracing: Tracing) -> None:
    """record.prompt is the last user message; the whole list is on the record and in gen_ai.input.messages."""
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "First answer"},
        {"role": "user", "content": [{"type": "text", "text": "Second question"}]},
    ]
    with PromptRecorder("chat", tracer_provider=tracing.provider):
        record = autorecord(messages, "Second answer")
    assert record is not None
    assert record.prompt == "Second question"
    assert record.messages == tuple(messages)
    prompt_event = tracing.span("invoke_workflow chat").events[0]
    assert prompt_event.attributes is not None
    exported = json.loads(str(prompt_event.attributes[semconv.GEN_AI_INPUT_MESSAGES]))
    assert exported == [
        {"role": "system", "parts": [{"type": "text", "content": "You are terse."}]},
        {"role": "user", "parts": [{"type": "text", "content": "First question"}]},
        {"role": "assistant", "parts": [{"type": "text", "content": "First answer"}]},
        {"role": "user", "parts": [{"type": "text", "content": "Second question"}]},
    ]


@pytest.mark.parametrize(
    ("prompt", "response", "error", "words"),
    [
        (b"bytes", "r", TypeError, ["`prompt`", "bytes", "str or a list of chat messages"]),
        (42, "r", TypeError, ["`prompt`", "int"]),
        ({"role": "user"}, "r", TypeError, ["`prompt`", "dict"]),
        ([], "r", ValueError, ["`prompt`", "non-empty"]),
        (["hi"], "r", TypeError, ["`prompt[0]`", "str"]),
        ("p", None, TypeError, ["`response`", "NoneType"]),
        ("p", b"r", TypeError, ["`response`", "bytes"]),
    ],
)
def test_wrong_types_fail_with_a_clear_error_and_record_nothing(
    tracing: Tracing, prompt: object, response: object, error: type[Exception], words: list[str]
) -> None:
    """A bad prompt or response raises a TypeError/ValueError naming it, and leaves no trace."""
    with PromptRecorder("bad", tracer_provider=tracing.provider) as recorder:
        with pytest.raises(error) as raised:
            autorecord(prompt, response)  # type: ignore[arg-type]
        assert len(recorder) == 0
    for word in words:
        assert word in str(raised.value)
    assert tracing.span("invoke_workflow bad").events == ()


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"model": 4}, TypeError, "`model`"),
        ({"input_tokens": -1}, ValueError, "`input_tokens`"),  # right type, wrong value
        ({"output_tokens": True}, TypeError, "`output_tokens`"),
        ({"started_at": "2026-01-01"}, TypeError, "`started_at`"),
        ({"ended_at": datetime(2026, 1, 1)}, ValueError, "timezone-aware"),
        (
            {
                "started_at": datetime(2026, 1, 2, tzinfo=timezone.utc),
                "ended_at": datetime(2026, 1, 1, tzinfo=timezone.utc),
            },
            ValueError,
            "after `ended_at`",
        ),
        ({"metadata": ["not", "a", "dict"]}, TypeError, "`metadata`"),
        ({"metadata": {1: "x"}}, TypeError, "keys must be str"),
    ],
)
def test_bad_keyword_arguments_are_refused(
    tracing: Tracing, kwargs: dict[str, object], error: type[Exception], words: str
) -> None:
    """Model, token counts, timestamps and metadata are checked with a message naming the argument."""
    with PromptRecorder("kw", tracer_provider=tracing.provider) as recorder:
        with pytest.raises(error, match=words):
            autorecord("p", "r", **kwargs)  # type: ignore[arg-type]
        assert len(recorder) == 0


def test_oversized_content_is_cut_in_the_export_and_kept_whole_in_memory(tracing: Tracing) -> None:
    """Past max_content_length the exported text is cut and annotated; the record keeps all of it."""
    prompt = "x" * 5_000
    with PromptRecorder("big", tracer_provider=tracing.provider, max_content_length=1_000):
        record = autorecord(prompt, "ok")
    assert record is not None
    assert record.prompt == prompt
    attributes = tracing.span("invoke_workflow big").events[0].attributes
    assert attributes is not None
    exported = str(attributes[semconv.PROMPT_TEXT])
    assert exported.startswith("x" * 1_000)
    assert len(exported) < 1_100
    assert attributes[semconv.PROMPT_ORIGINAL_LENGTH] == 5_000
    assert json.loads(str(attributes[semconv.GEN_AI_INPUT_MESSAGES]))[0]["parts"][0]["content"] == exported


def test_lone_surrogates_are_exported_as_replacement_characters(tracing: Tracing) -> None:
    """Text protobuf cannot encode is made safe for export, and kept as given in memory."""
    with PromptRecorder("surrogates", tracer_provider=tracing.provider):
        record = autorecord("bad \ud800 text", "ok")
    assert record is not None
    assert record.prompt == "bad \ud800 text"
    attributes = tracing.span("invoke_workflow surrogates").events[0].attributes
    assert attributes is not None
    assert attributes[semconv.PROMPT_TEXT] == "bad \ufffd text"
    str(attributes[semconv.GEN_AI_INPUT_MESSAGES]).encode("utf-8")  # would raise on a lone surrogate


# --- more pairs than a span holds ---------------------------------------------------------


def test_a_thousand_pairs_in_one_block_all_reach_the_exporter(tracing: Tracing) -> None:
    """Past the event limit, pairs continue on linked segment spans: 2,000 events, none dropped."""
    with PromptRecorder("long", tracer_provider=tracing.provider) as recorder:
        for index in range(1_000):
            autorecord(f"prompt {index}", f"response {index}")
    spans = tracing.spans()
    main = tracing.span("invoke_workflow long")
    segments = sorted(
        (span for span in spans if span is not main and span.kind is SpanKind.INTERNAL),
        key=lambda span: (span.attributes or {})[semconv.SEGMENT_INDEX],
    )
    events = [event for span in [main, *segments] for event in span.events]
    assert len(events) == 2_000
    # Each pair's call span is a child of the span that carries its events.
    carriers = {span.context.span_id for span in [main, *segments]}
    calls = [span for span in spans if span.kind is SpanKind.CLIENT]
    assert len(calls) == 1_000
    assert all(call.parent is not None and call.parent.span_id in carriers for call in calls)
    assert all(span.dropped_events == 0 for span in spans)
    texts = [(event.attributes or {}).get(semconv.PROMPT_TEXT) for event in events[::2]]
    assert texts == [f"prompt {index}" for index in range(1_000)]
    # Segments are children of the recorder span, each linked to the one before it.
    previous = main
    for index, segment in enumerate(segments, start=1):
        assert segment.name == f"long segment {index}"
        assert segment.parent is not None
        assert segment.parent.span_id == main.context.span_id
        assert [link.context.span_id for link in segment.links] == [previous.context.span_id]
        previous = segment
    assert main.attributes is not None
    assert main.attributes[semconv.SEGMENT_COUNT] == len(segments) + 1
    assert main.attributes[semconv.RECORD_COUNT] == 1_000
    # Each record names the span its events are on.
    span_ids = {format(span_id, "016x") for span_id in carriers}
    assert {record.span_id for record in recorder.records} == span_ids


def test_segments_follow_the_event_limit_the_environment_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    """A smaller OTEL_SPAN_EVENT_COUNT_LIMIT gets smaller segments, still with nothing dropped."""
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "10")
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)  # its SpanLimits() reads the variable too
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with PromptRecorder("small", tracer_provider=provider):
        for index in range(20):
            autorecord(f"p{index}", f"r{index}")
    spans = exporter.get_finished_spans()
    assert sum(len(span.events) for span in spans) == 40
    assert all(span.dropped_events == 0 and len(span.events) <= 10 for span in spans)
    provider.shutdown()


def test_the_exception_event_fits_even_when_the_span_is_full(tracing: Tracing) -> None:
    """One event slot is kept for the exception a failing block records."""
    with pytest.raises(RuntimeError), PromptRecorder("full", tracer_provider=tracing.provider):
        for index in range(63):  # 126 events: the recorder span's share of 128
            autorecord(f"p{index}", f"r{index}")
        raise RuntimeError("boom")
    main = tracing.span("invoke_workflow full")
    assert main.dropped_events == 0
    assert main.events[-1].name == "exception"


# --- nesting, tasks and threads -----------------------------------------------------------


def test_nested_recorders_make_a_child_span_and_share_the_records(tracing: Tracing) -> None:
    """The inner span is a child of the outer; inner records are in both, their events only on the inner span."""
    outer = PromptRecorder("outer", tracer_provider=tracing.provider)
    inner = PromptRecorder("inner", tracer_provider=tracing.provider)
    with outer:
        autorecord("outer prompt", "o")
        with inner:
            assert current_recorder() is inner
            autorecord("inner prompt", "i")
        assert current_recorder() is outer
        autorecord("outer again", "o2")
    assert current_recorder() is None
    outer_span, inner_span = tracing.span("invoke_workflow outer"), tracing.span("invoke_workflow inner")
    assert inner_span.parent is not None
    assert inner_span.parent.span_id == outer_span.context.span_id
    assert inner_span.context.trace_id == outer_span.context.trace_id
    assert [r.prompt for r in outer.records] == ["outer prompt", "inner prompt", "outer again"]
    assert [r.prompt for r in inner.records] == ["inner prompt"]
    assert outer.records[1] is inner.records[0]
    assert [e.attributes[semconv.PROMPT_TEXT] for e in outer_span.events[::2]] == [
        "outer prompt",
        "outer again",
    ]  # type: ignore[index]
    assert [e.attributes[semconv.PROMPT_TEXT] for e in inner_span.events[::2]] == ["inner prompt"]  # type: ignore[index]


def test_a_recorder_nested_in_itself_keeps_each_record_once(tracing: Tracing) -> None:
    """Entering the same recorder twice in a chain does not duplicate its records."""
    recorder = PromptRecorder("self", tracer_provider=tracing.provider)
    with recorder, recorder:
        autorecord("p", "r")
    assert len(recorder) == 1
    assert sorted(span.name for span in tracing.spans()) == [
        "chat",
        "invoke_workflow self",
        "invoke_workflow self",
    ]


def test_asyncio_tasks_inherit_the_recorder_and_stay_apart(tracing: Tracing) -> None:
    """Tasks started inside a block record into it; concurrent tasks in their own recorders never mix."""

    async def worker(name: str) -> PromptRecorder:
        async with PromptRecorder(name, tracer_provider=tracing.provider) as recorder:
            for index in range(20):
                autorecord(f"{name} {index}", "r")
                await asyncio.sleep(0)
        return recorder

    async def main() -> tuple[PromptRecorder, list[PromptRecorder]]:
        async with PromptRecorder("parent", tracer_provider=tracing.provider) as parent:
            child_task = asyncio.create_task(asyncio.sleep(0, result=autorecord("from a task", "r")))
            await child_task
            workers = await asyncio.gather(worker("a"), worker("b"))
        return parent, list(workers)

    parent, (first, second) = asyncio.run(main())
    assert {r.prompt for r in first.records} == {f"a {i}" for i in range(20)}
    assert {r.prompt for r in second.records} == {f"b {i}" for i in range(20)}
    assert len(parent) == 41  # its own record plus both workers', which ran inside its block


def test_a_task_created_in_a_block_records_into_it(tracing: Tracing) -> None:
    """The task's context is a copy of the block's, so autorecord inside it finds the recorder."""

    async def ask() -> None:
        await asyncio.sleep(0)
        autorecord("in task", "r")

    async def main() -> PromptRecorder:
        async with PromptRecorder("tasks", tracer_provider=tracing.provider) as recorder:
            await asyncio.gather(*(asyncio.create_task(ask()) for _ in range(5)))
        return recorder

    recorder = asyncio.run(main())
    assert len(recorder) == 5
    assert len(tracing.span("invoke_workflow tasks").events) == 10


def test_a_cancelled_task_ends_its_span_not_failed_and_restores_the_context(tracing: Tracing) -> None:
    """Cancellation inside a block propagates; the span ends, not failed (as use_span: only an Exception fails a span), and nothing stays current."""

    async def blocked(started: asyncio.Event) -> None:
        async with PromptRecorder("cancelled", tracer_provider=tracing.provider):
            autorecord("before", "r")
            started.set()
            await asyncio.sleep(30)

    async def main() -> None:
        started = asyncio.Event()
        task = asyncio.create_task(blocked(started))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert current_recorder() is None

    asyncio.run(main())
    span = tracing.span("invoke_workflow cancelled")
    # As the API's use_span: only an Exception marks a span as failed, not a cancellation.
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes is not None
    assert semconv.ERROR_TYPE not in span.attributes
    assert "exception" not in [event.name for event in span.events]


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_a_block_stopped_by_a_base_exception_is_not_marked_failed(
    tracing: Tracing, stop: type[BaseException]
) -> None:
    """KeyboardInterrupt, SystemExit, GeneratorExit pass through unchanged; the span ends, not failed."""
    with pytest.raises(stop), PromptRecorder("stopped", tracer_provider=tracing.provider):
        autorecord("p", "r")
        raise stop()
    span = tracing.span("invoke_workflow stopped")
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes is not None
    assert semconv.ERROR_TYPE not in span.attributes
    assert [event.name for event in span.events] == [semconv.EVENT_PROMPT, semconv.EVENT_RESPONSE]
    assert current_recorder() is None


def test_a_plain_thread_does_not_see_the_recorder(tracing: Tracing) -> None:
    """Threads start with an empty context: without wrap() they record nothing."""
    seen: list[object] = []
    with PromptRecorder("threads", tracer_provider=tracing.provider) as recorder:
        thread = threading.Thread(target=lambda: seen.append(autorecord("p", "r")))
        thread.start()
        thread.join()
    assert seen == [None]
    assert len(recorder) == 0


def test_wrap_runs_pool_work_inside_the_block(tracing: Tracing) -> None:
    """ThreadPoolExecutor work wrapped by the recorder records into the block's span."""
    with PromptRecorder("pool", tracer_provider=tracing.provider) as recorder:
        ask = recorder.wrap(lambda question: autorecord(question, f"answer to {question}"))
        with ThreadPoolExecutor(max_workers=4) as pool:
            mapped = list(pool.map(ask, [f"q{i}" for i in range(40)]))
            submitted = recorder.submit(pool, autorecord, "submitted", "r").result()
    assert all(isinstance(record, PromptRecord) for record in mapped)
    assert submitted is not None
    assert len(recorder) == 41
    span = tracing.span("invoke_workflow pool")
    assert {record.span_id for record in recorder.records} == {_hex_ids(span)[1]}
    assert sum(1 for event in span.events if event.name == semconv.EVENT_PROMPT) == 41


def test_wrap_outside_a_block_enters_the_recorder_per_call(tracing: Tracing) -> None:
    """A function wrapped outside any block gets a span of its own on every call."""
    recorder = PromptRecorder("per-call", tracer_provider=tracing.provider)
    ask = recorder.wrap(lambda: autorecord("p", "r"))
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda _: ask(), range(3)))
    assert len(recorder) == 3
    assert [span.name for span in tracing.spans()] == ["chat", "invoke_workflow per-call"] * 3


def test_a_recorder_shared_by_threads_loses_nothing(tracing: Tracing) -> None:
    """32 threads recording through one recorder: every record kept once and every event exported."""
    with PromptRecorder("shared", tracer_provider=tracing.provider) as recorder:
        work = recorder.wrap(lambda n: [autorecord(f"t{n} p{i}", "r") for i in range(50)])
        threads = [threading.Thread(target=work, args=(n,)) for n in range(32)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(recorder) == 32 * 50
    assert len({record.id for record in recorder.records}) == 32 * 50
    events = [event for span in tracing.spans() for event in span.events]
    assert len(events) == 2 * 32 * 50
    assert all(span.dropped_events == 0 for span in tracing.spans())


def test_recording_after_the_block_ended_keeps_the_record_in_memory_only(
    tracing: Tracing, caplog: pytest.LogCaptureFixture
) -> None:
    """A thread that outlives its block still has its record kept; nothing is added to the ended span."""
    with PromptRecorder("late", tracer_provider=tracing.provider) as recorder:
        late = recorder.wrap(lambda: autorecord("late", "r"))
    with caplog.at_level(logging.WARNING, logger="promptrecorder"):
        record = late()
    assert record is not None
    assert record.span_id is None
    assert any("after its PromptRecorder 'late' exited" in message for message in caplog.messages)
    assert [r.prompt for r in recorder.records] == ["late"]
    assert tracing.span("invoke_workflow late").events == ()


def test_exiting_in_another_context_ends_the_span_without_raising(tracing: Tracing) -> None:
    """A recorder entered in one context and exited in another still ends its span."""
    recorder = PromptRecorder("elsewhere", tracer_provider=tracing.provider)
    entered = contextvars.copy_context()
    entered.run(recorder.__enter__)
    contextvars.copy_context().run(recorder.__exit__, None, None, None)
    assert len(tracing.spans()) == 1
    assert current_recorder() is None


# --- no tracing, broken tracing -------------------------------------------------------------


def test_without_any_tracing_set_up_records_stay_in_memory(caplog: pytest.LogCaptureFixture) -> None:
    """With the API's no-op provider, recording works quietly and the ids are None."""
    with (
        caplog.at_level(logging.WARNING, logger="promptrecorder"),
        PromptRecorder("memory", tracer_provider=trace.NoOpTracerProvider()) as recorder,
    ):
        record = autorecord("p", "r")
    assert record is not None
    assert (record.trace_id, record.span_id) == (None, None)
    assert len(recorder) == 1
    assert caplog.messages == []


def test_recorders_on_one_provider_look_its_tracer_up_once(tracing: Tracing) -> None:
    """A recorder per request must not pay for `get_tracer` each time: one lookup per provider."""
    calls = []

    class CountingProvider(trace.TracerProvider):
        def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
            calls.append(args)
            return tracing.provider.get_tracer(*args, **kwargs)

    provider = CountingProvider()
    for index in range(3):
        with PromptRecorder(f"request {index}", tracer_provider=provider):
            autorecord("p", "r")
    assert len(calls) == 1
    assert [span.name for span in tracing.exporter.get_finished_spans()] == [
        "chat",
        "invoke_workflow request 0",
        "chat",
        "invoke_workflow request 1",
        "chat",
        "invoke_workflow request 2",
    ]


def test_an_unhashable_provider_still_works(tracing: Tracing) -> None:
    """A provider that cannot key a cache (no __hash__) gets its tracer asked for each time."""

    class UnhashableProvider(trace.TracerProvider):
        __hash__ = None  # type: ignore[assignment]

        def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
            return tracing.provider.get_tracer(*args, **kwargs)

    with PromptRecorder("unhashable", tracer_provider=UnhashableProvider()):
        autorecord("p", "r")
    assert [span.name for span in tracing.exporter.get_finished_spans()] == [
        "chat",
        "invoke_workflow unhashable",
    ]


def test_a_tracer_that_fails_never_stops_the_block(caplog: pytest.LogCaptureFixture) -> None:
    """If starting the span raises, the block still runs and records in memory."""

    class BrokenTracer(trace.NoOpTracer):
        def start_span(self, *args: object, **kwargs: object) -> trace.Span:
            raise RuntimeError("tracer is broken")

    class BrokenProvider(trace.NoOpTracerProvider):
        def get_tracer(self, *args: object, **kwargs: object) -> trace.Tracer:
            return BrokenTracer()

    with (
        caplog.at_level(logging.WARNING, logger="promptrecorder"),
        PromptRecorder("broken", tracer_provider=BrokenProvider()) as recorder,
    ):
        record = autorecord("p", "r")
    assert len(recorder) == 1
    assert record is not None
    assert record.trace_id is None
    assert any("could not start a span" in message for message in caplog.messages)


# --- the records ----------------------------------------------------------------------------


def test_records_views(tracing: Tracing) -> None:
    """records, prompts_and_responses, len() and iteration agree with each other."""
    with PromptRecorder("views", tracer_provider=tracing.provider) as recorder:
        autorecord("a", "1")
        autorecord("b", "2")
    assert len(recorder) == 2
    assert list(recorder) == recorder.records
    assert [r.prompt for r in recorder] == ["a", "b"]
    assert recorder.prompts_and_responses == [
        {"prompt": "a", "response": "1"},
        {"prompt": "b", "response": "2"},
    ]
    assert repr(recorder) == "PromptRecorder('views', records=2)"
    assert "<table>" in recorder._repr_html_()
    recorder.clear()
    assert len(recorder) == 0


def test_max_records_evicts_the_oldest_and_counts(tracing: Tracing) -> None:
    """A bounded recorder keeps the newest records; evicted ones are counted (and were still exported)."""
    with PromptRecorder("bounded", tracer_provider=tracing.provider, max_records=3) as recorder:
        for index in range(5):
            autorecord(f"p{index}", "r")
    assert [r.prompt for r in recorder] == ["p2", "p3", "p4"]
    assert recorder.evicted == 2
    assert len(tracing.span("invoke_workflow bounded").events) == 10


def test_dataframe_has_a_row_per_record(tracing: Tracing) -> None:
    """recorder.dataframe() gives one row per record with the record's fields."""
    with PromptRecorder("frame", tracer_provider=tracing.provider) as recorder:
        autorecord("a", "1", model="m", input_tokens=1, output_tokens=2)
        autorecord("b", "2")
    frame = recorder.dataframe()
    assert list(frame["prompt"]) == ["a", "b"]
    assert frame.loc[0, "model"] == "m"
    assert frame.loc[0, "output_tokens"] == 2


def test_jsonl_round_trip_is_lossless(tracing: Tracing, tmp_path: Path) -> None:
    """to_jsonl then from_jsonl gives records equal to the originals."""
    path = tmp_path / "records.jsonl"
    with PromptRecorder("saved", tracer_provider=tracing.provider) as recorder:
        autorecord("plain ✓", "r", model="m", input_tokens=1, started_at=datetime.now(timezone.utc))
        autorecord([{"role": "user", "content": "chat"}], "r2", metadata={"k": [1, 2]})
    assert recorder.to_jsonl(path) == 2
    loaded = PromptRecorder.from_jsonl(path)
    assert loaded.name == "saved"
    assert loaded.records == recorder.records


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"name": ""}, ValueError),  # right type, wrong value
        ({"name": 3}, TypeError),
        ({"max_records": 0}, ValueError),
        ({"max_records": "10"}, TypeError),
        ({"max_records": 1.5}, TypeError),
        ({"max_content_length": -5}, ValueError),
        ({"tracer_provider": "global"}, TypeError),
        ({"attributes": ["x"]}, TypeError),
        ({"attributes": {1: "x"}}, TypeError),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs: dict[str, object], error: type[Exception]) -> None:
    """Mistakes in constructing a recorder fail at once, naming the argument."""
    with pytest.raises(error, match="`"):
        PromptRecorder(**kwargs)  # type: ignore[arg-type]


def test_a_providers_explicit_event_limit_is_not_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented limitation: the SDK keeps a provider's own SpanLimits private, so a
    provider built with ``SpanLimits(max_events=10)`` while the variable says 128 drops events."""
    monkeypatch.delenv("OTEL_SPAN_EVENT_COUNT_LIMIT", raising=False)
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_events=10), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with PromptRecorder("small", tracer_provider=provider) as recorder:
        for index in range(20):
            autorecord(f"p{index}", f"r{index}")
    (span,) = [span for span in exporter.get_finished_spans() if span.name == "invoke_workflow small"]
    assert span.dropped_events == 30
    assert len(recorder.records) == 20  # the records in memory are whole


def test_each_block_records_its_duration_as_gen_ai_invoke_workflow_duration(tracing: Tracing) -> None:
    """One gen_ai.invoke_workflow.duration point per block, by workflow name, about the
    span's duration; error.type only when an Exception ended the block (as the span's status)."""
    with capture_metrics() as metrics:
        with PromptRecorder("triage", tracer_provider=tracing.provider):
            autorecord("p", "r")
        with pytest.raises(KeyError), PromptRecorder("triage", tracer_provider=tracing.provider):
            raise KeyError("boom")
        with (
            pytest.raises(asyncio.CancelledError),
            PromptRecorder("triage", tracer_provider=tracing.provider),
        ):
            raise asyncio.CancelledError
        points = metrics.points(semconv.METRIC_INVOKE_WORKFLOW_DURATION)
    common = {semconv.GEN_AI_OPERATION_NAME: "invoke_workflow", semconv.GEN_AI_WORKFLOW_NAME: "triage"}
    by_attributes = {tuple(sorted(p.attributes.items())): (p.count, p.unit) for p in points}
    assert by_attributes == {
        tuple(sorted(common.items())): (2, "s"),  # the plain block and the cancelled one
        tuple(sorted({**common, semconv.ERROR_TYPE: "KeyError"}.items())): (1, "s"),
    }
    spans = [s for s in tracing.spans() if s.name == "invoke_workflow triage"]
    longest_span_s = max((s.end_time or 0) - (s.start_time or 0) for s in spans) / 1e9
    total_s = sum(p.sum for p in points)
    assert 0 < total_s < 3 * longest_span_s + 0.05
