"""Threads, many asyncio tasks, cancellation and odd exits: nothing lost, misattributed or left open."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import threading
from collections.abc import Iterator

import httpx2
import openai
import pytest

from promptrecorder import PromptRecorder, autorecord, current_recorder
from promptrecorder.llm.openai_adapter import CHAT
from promptrecorder.llm.openai_calls import arecord_create
from promptrecorder.recording import semconv
from promptrecorder.recording.calls import describe_endpoint
from tests.conftest import Tracing


@pytest.fixture(autouse=True)
def _no_context_noise(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """OpenTelemetry logs "Failed to detach context" when a context token is misused: never here."""
    with caplog.at_level(logging.DEBUG, logger="opentelemetry.context"):
        yield
    noise = [
        record.getMessage() for record in caplog.records if record.name.startswith("opentelemetry.context")
    ]
    assert noise == []


def _prompts_by_span(tracing: Tracing) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for span in tracing.spans():
        for event in span.events:
            if event.name == semconv.EVENT_PROMPT and event.attributes:
                name = span.name.removeprefix(semconv.WORKFLOW_SPAN_PREFIX)
                found.setdefault(name, set()).add(str(event.attributes[semconv.PROMPT_TEXT]))
    return found


def test_32_threads_each_with_its_own_recorder_never_mix(tracing: Tracing) -> None:
    """Each thread's records land in its own recorder and on its own span, and nowhere else."""
    recorders: dict[int, PromptRecorder] = {}
    start = threading.Barrier(32)

    def work(n: int) -> None:
        start.wait()
        with PromptRecorder(f"thread-{n}", tracer_provider=tracing.provider) as recorder:
            recorders[n] = recorder
            for i in range(50):
                autorecord(f"{n}:{i}", "r")
        assert current_recorder() is None

    threads = [threading.Thread(target=work, args=(n,)) for n in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    by_span = _prompts_by_span(tracing)
    for n, recorder in recorders.items():
        expected = {f"{n}:{i}" for i in range(50)}
        assert {record.prompt for record in recorder.records} == expected
        assert by_span[f"thread-{n}"] == expected
    assert len(tracing.spans()) == 32 + 32 * 50  # a span per block, and one per pair


def test_a_thousand_tasks_in_their_own_recorders_stay_apart(tracing: Tracing) -> None:
    """1,000 interleaved asyncio tasks: every record in its task's recorder; every span ended."""

    async def task(n: int) -> PromptRecorder:
        async with PromptRecorder(f"task-{n}", tracer_provider=tracing.provider) as recorder:
            for i in range(3):
                autorecord(f"{n}:{i}", "r")
                await asyncio.sleep(0)
        return recorder

    async def main() -> list[PromptRecorder]:
        return await asyncio.gather(*(task(n) for n in range(1_000)))

    recorders = asyncio.run(main())
    for n, recorder in enumerate(recorders):
        assert [record.prompt for record in recorder.records] == [f"{n}:{i}" for i in range(3)]
    assert len(tracing.spans()) == 1_000 + 3_000  # a span per block, and one per pair
    by_span = _prompts_by_span(tracing)
    assert all(by_span[f"task-{n}"] == {f"{n}:{i}" for i in range(3)} for n in range(1_000))


def test_cancelling_a_task_in_the_middle_of_a_call_records_it_and_ends_every_span(tracing: Tracing) -> None:
    """A call cancelled while waiting on the server: CancelledError propagates, the call is recorded
    as failed, and both the CLIENT span and the recorder span are ended."""
    request_arrived = asyncio.Event()

    async def slow_server(request: httpx2.Request) -> httpx2.Response:
        request_arrived.set()
        await asyncio.sleep(30)
        raise AssertionError("the call should have been cancelled")

    async def main() -> PromptRecorder:
        client = openai.AsyncOpenAI(
            base_url="http://llm.test/v1",
            api_key="test",
            max_retries=0,
            http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(slow_server)),
        )
        endpoint = describe_endpoint(client.base_url, type(client).__name__)
        recorder = PromptRecorder("cancel", tracer_provider=tracing.provider)

        async def ask() -> None:
            async with recorder:
                kwargs = {"model": "m", "messages": [{"role": "user", "content": "slow question"}]}
                await arecord_create(client.chat.completions.create, (), kwargs, api=CHAT, endpoint=endpoint)

        task = asyncio.create_task(ask())
        await request_arrived.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await client.close()
        return recorder

    recorder = asyncio.run(main())
    (record,) = recorder.records
    assert record.prompt == "slow question"
    assert record.error is not None
    assert record.error.startswith("CancelledError")
    assert record.complete is False
    names = sorted(span.name for span in tracing.spans())
    assert names == ["chat m", "invoke_workflow cancel"]
    assert semconv.ERROR_TYPE not in tracing.span("chat m").attributes  # type: ignore[operator]  # cancelled, not failed


def test_exiting_in_another_context_makes_no_context_noise(tracing: Tracing) -> None:
    """Entered in one context and exited in another: the span ends and nothing complains."""
    recorder = PromptRecorder("moved", tracer_provider=tracing.provider)
    contextvars.copy_context().run(recorder.__enter__)
    contextvars.copy_context().run(recorder.__exit__, None, None, None)
    assert [span.name for span in tracing.spans()] == ["invoke_workflow moved"]


def test_a_recorder_shared_across_tasks_keeps_every_record(tracing: Tracing) -> None:
    """One recorder entered by 200 concurrent tasks (a per-process recorder in a service)."""
    shared = PromptRecorder("shared", tracer_provider=tracing.provider, max_records=None)

    async def handler(n: int) -> None:
        async with shared:
            await asyncio.sleep(0)
            autorecord(f"request {n}", json.dumps({"n": n}))

    async def main() -> None:
        await asyncio.gather(*(handler(n) for n in range(200)))

    asyncio.run(main())
    assert {record.prompt for record in shared.records} == {f"request {n}" for n in range(200)}
    spans = [span for span in tracing.spans() if span.name == "invoke_workflow shared"]
    assert len(spans) == 200
    assert len(tracing.spans()) == 400  # and each pair's call span
    # Each task's record is on the span of that task's own entry.
    for span in spans:
        assert len(span.events) == 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_repeat_its_parents_record_ids() -> None:
    """Record ids come from `random`, which reseeds in a forked child: the two processes'
    next ids differ (with os.urandom's ids this held trivially; it must still hold)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: record once, report the id, leave without running pytest's exit
        try:
            with PromptRecorder("child") as recorder:
                autorecord("p", "r")
            os.write(write_end, recorder.records[0].id.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with PromptRecorder("parent") as recorder:
        autorecord("p", "r")
    os.waitpid(pid, 0)
    child_id = os.read(read_end, 64).decode()
    os.close(read_end)
    assert len(child_id) == 16
    assert child_id != recorder.records[0].id
