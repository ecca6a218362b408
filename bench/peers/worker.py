"""One benchmark worker process: the cases of one row, timed batch by batch on command.

``bench/run_all.py`` starts one worker per instrumentation (instrumentors patch openai
globally, so each gets a process of its own) plus one for the micro-benchmark, and drives
them all in interleaved rounds over a line protocol: it writes a JSON command on the
worker's stdin, the worker answers with one JSON line on the stdout it had at start
(the worker's own prints and the peers' logging go to stderr). Commands:

- ``{"cmd": "setup", "batch_ms": 40, "seed": 0}``: build the arms, check the peer captures
  content, calibrate the calls per batch (the calibration batches are the warm-up), and
  answer with versions, settings and what one instrumented call exports.
- ``{"cmd": "round"}``: run one timed batch of every arm, in a freshly shuffled order, and
  answer with each arm's wall and CPU nanoseconds per call.
- ``{"cmd": "quit"}``.

Every openai worker has a ``plain`` arm (the uninstrumented call) and an ``instrumented``
arm, timed in the same process and round: the instrumentation is switched on and off
between batches with the peer's own public API (``instrument()``/``uninstrument()``, or
logfire's context manager), outside the timing. Each batch clears the exporter first.

Kinds: ``micro`` (bench/overhead.py's cases, in the project's venv), ``ours`` (the project's
venv), ``otel_genai``, ``openinference``, ``openllmetry``, ``logfire`` (the peers' venv).
"""

from __future__ import annotations

import functools
import gc
import json
import os
import platform
import random
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import canned  # noqa: E402  (after the path set-up above)


@dataclass
class Arm:
    """One thing timed: untimed ``prepare`` and ``done`` around a timed ``loop(n)``.

    An arm with a ``batch`` (bench/overhead.py's cases) times itself: ``batch(n)`` returns
    the (wall, cpu) nanoseconds of its own timed loop.
    """

    name: str
    loop: Callable[[int], None] | None = None
    prepare: Callable[[], None] = lambda: None
    done: Callable[[int], dict[str, Any]] = lambda n: {}
    batch: Callable[[int], tuple[int, int]] | None = None
    calls: int = 0

    def run(self, n: int) -> tuple[int, int, dict[str, Any]]:
        if self.batch is not None:
            wall, cpu = self.batch(n)
            return wall, cpu, {}
        assert self.loop is not None
        self.prepare()
        wall, cpu = timed(self.loop, n)
        return wall, cpu, self.done(n)


@dataclass
class Worker:
    kind: str
    arms: list[Arm]
    info: dict[str, Any] = field(default_factory=dict)


def timed(loop: Callable[[int], None], n: int) -> tuple[int, int]:
    """Run ``loop(n)`` with the collector off; return its (wall, cpu) nanoseconds."""
    gc.disable()
    try:
        wall_start = time.perf_counter_ns()
        cpu_start = time.process_time_ns()
        loop(n)
        cpu_end = time.process_time_ns()
        wall_end = time.perf_counter_ns()
    finally:
        gc.enable()
    return wall_end - wall_start, cpu_end - cpu_start


def run_arm(arm: Arm, n: int) -> dict[str, Any]:
    wall, cpu, extra = arm.run(n)
    return {"wall_ns": wall / n, "cpu_ns": cpu / n, "calls": n, **extra}


def calibrate(arm: Arm, batch_ns: float) -> int:
    """How many calls make one batch of about ``batch_ns``; the trial batches warm up too."""
    n = 1
    while True:
        wall, _, _ = arm.run(n)
        if wall >= batch_ns / 8 or n >= 50_000_000:
            break
        n *= 4
    return max(1, round(n * batch_ns / max(wall, 1)))


def versions(*names: str) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


# --- the openai rows ------------------------------------------------------------------------


def _provider() -> tuple[Any, Any]:
    """The TracerProvider every row uses: SimpleSpanProcessor + InMemorySpanExporter."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _exported_text(spans: Any) -> str:
    """Every attribute value of the spans and of their events, as one string to search."""
    values: list[str] = []
    for span in spans:
        values += [str(value) for value in (span.attributes or {}).values()]
        for event in span.events:
            values += [str(value) for value in (event.attributes or {}).values()]
    return "\n".join(values)


def _openai_arms(
    instrument: Callable[[], None],
    uninstrument: Callable[[], None],
    exporter: Any,
    client: Any,
    enter: Callable[[], None] = lambda: None,
    leave: Callable[[], None] = lambda: None,
) -> list[Arm]:
    call = canned.call

    def loop(n: int) -> None:
        for _ in range(n):
            call(client)

    def plain() -> None:
        uninstrument()
        exporter.clear()

    def nothing_exported(n: int) -> dict[str, Any]:
        return {"spans_per_call": len(exporter.get_finished_spans()) / n}

    def instrumented() -> None:
        instrument()
        exporter.clear()
        enter()

    def counted(n: int) -> dict[str, Any]:
        leave()
        spans = exporter.get_finished_spans()
        return {"spans_per_call": len(spans) / n}

    return [
        Arm("plain", loop, plain, nothing_exported),
        Arm("instrumented", loop, instrumented, counted),
    ]


def _content_check(exporter: Any, spans: Any = None) -> dict[str, Any]:
    spans = exporter.get_finished_spans() if spans is None else spans
    text = _exported_text(spans)
    return {
        "spans": len(spans),
        "span_names": sorted({span.name for span in spans}),
        "prompt_captured": canned.PROMPT in text,
        "response_captured": canned.ANSWER in text,
    }


class _Toggle:
    """Switches an instrumentation off and on again by swapping the attributes it patched.

    Not every peer's ``uninstrument()`` can be followed by another ``instrument()`` (one
    wraps openai a second time on top of its first wrapper), so the harness does the
    switching itself, the same way for every row: it snapshots the namespaces of openai,
    httpx2 and httpcore2 (each module and each class defined in it) before and after
    instrumenting, and switches by putting back the attributes that differ: the pristine
    ones (off) or the instrumentation's own wrappers, the very same objects (on). Every
    openai module is imported first, so that none is first imported, and patched, by the
    instrumentation itself.
    """

    _PACKAGES = ("openai", "httpx2", "httpcore2")

    def __init__(self, instrument: Callable[[], Any]) -> None:
        _import_all("openai")
        before = self._snapshot()
        self.kept = instrument()  # some handles undo the instrumentation when collected
        after = self._snapshot()
        self.changes: list[tuple[Any, str, Any, Any]] = []
        for key, (owner, names) in after.items():
            if key not in before:  # imported while instrumenting, so not patched by it (checked below)
                continue
            old_names = before[key][1]
            for name in old_names.keys() | names.keys():
                old, new = old_names.get(name, _MISSING), names.get(name, _MISSING)
                if old is new or name in _METADATA:
                    continue
                if old is _MISSING and isinstance(new, (type, types.ModuleType)):
                    continue  # a lazily imported name that resolving the patch target cached
                self.changes.append((owner, name, old, new))
        if not self.changes:
            raise SystemExit("instrumenting changed nothing in openai, httpx2 or httpcore2")
        self.active = True

    @property
    def patched(self) -> list[str]:
        return sorted(
            f"{getattr(owner, '__module__', '')}.{owner.__name__}.{name}".lstrip(".")
            if isinstance(owner, type)
            else f"{owner.__name__}.{name}"
            for owner, name, _, _ in self.changes
        )

    @classmethod
    def _snapshot(cls) -> dict[int, tuple[Any, dict[str, Any]]]:
        spaces: dict[int, tuple[Any, dict[str, Any]]] = {}
        for name, module in list(sys.modules.items()):
            if module is None or name.partition(".")[0] not in cls._PACKAGES:
                continue
            spaces[id(module)] = (module, dict(vars(module)))
            for value in list(vars(module).values()):
                # Classes defined here and patchable (not the immutable ones of C extensions).
                if isinstance(value, type) and value.__module__ == name and value.__flags__ & _HEAP_TYPE:
                    spaces[id(value)] = (value, dict(vars(value)))
        return spaces

    def _put(self, which: int) -> None:
        for change in self.changes:
            owner, name, value = change[0], change[1], change[which]
            if value is _MISSING:
                if name in vars(owner):
                    delattr(owner, name)
            else:
                setattr(owner, name, value)

    def on(self) -> None:
        if not self.active:
            self._put(3)
            self.active = True

    def off(self) -> None:
        if self.active:
            self._put(2)
            self.active = False


_MISSING = object()
_HEAP_TYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made by a class statement, whose attributes can be set
# Attributes that describe a namespace rather than behave; a fresh object on some reads.
_METADATA = frozenset({"__doc__", "__module__", "__dict__", "__weakref__", "__annotations__", "__builtins__"})


def _import_all(package: str) -> None:
    import importlib
    import pkgutil

    try:
        module = importlib.import_module(package)
    except Exception:  # optional extras (numpy, pandas, websockets...) that are not installed
        return
    for info in pkgutil.iter_modules(getattr(module, "__path__", None) or [], package + "."):
        _import_all(info.name)


def _instrumentor_worker(kind: str, instrumentor: Any, packages: tuple[str, ...]) -> Worker:
    provider, exporter = _provider()
    toggle = _Toggle(lambda: instrumentor.instrument(tracer_provider=provider))
    return _checked(kind, toggle, exporter, canned.client(), packages)


def _checked(
    kind: str, toggle: _Toggle, exporter: Any, client: Any, packages: tuple[str, ...], **hooks: Any
) -> Worker:
    """The worker's arms, after calls proved that content is captured when on, nothing when off."""
    enter, leave = hooks.get("enter", lambda: None), hooks.get("leave", lambda: None)
    toggle.off()
    exporter.clear()
    canned.call(client)
    if exporter.get_finished_spans():
        raise SystemExit(f"{kind}: switched off, the instrumentation still exported spans")
    toggle.on()
    exporter.clear()
    enter()
    canned.call(client)
    leave()
    check = _content_check(exporter)
    if not (check["prompt_captured"] and check["response_captured"]):
        raise SystemExit(f"{kind}: the instrumented call did not export the prompt and response: {check}")
    return Worker(
        kind,
        _openai_arms(toggle.on, toggle.off, exporter, client, **hooks),
        {"content_check": check, "patched": toggle.patched, "versions": versions(*packages, *_COMMON)},
    )


_COMMON = ("openai", "httpx2", "pydantic", "opentelemetry-api", "opentelemetry-sdk")


def worker_otel_genai() -> Worker:
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    return _instrumentor_worker(
        "otel_genai",
        OpenAIInstrumentor(),
        ("opentelemetry-instrumentation-openai-v2", "opentelemetry-util-genai"),
    )


def worker_openinference() -> Worker:
    from openinference.instrumentation.openai import OpenAIInstrumentor

    return _instrumentor_worker(
        "openinference", OpenAIInstrumentor(), ("openinference-instrumentation-openai",)
    )


def worker_openllmetry() -> Worker:
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    return _instrumentor_worker(
        "openllmetry", OpenAIInstrumentor(), ("opentelemetry-instrumentation-openai",)
    )


def worker_logfire() -> Worker:
    import logfire
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    logfire.configure(
        send_to_logfire=False, console=False, additional_span_processors=[SimpleSpanProcessor(exporter)]
    )
    # The returned context manager is kept: collected, it would undo the instrumentation.
    return _checked("logfire", _Toggle(logfire.instrument_openai), exporter, canned.client(), ("logfire",))


def worker_ours() -> Worker:
    from promptrecorder import PromptRecorder, instrument_openai

    provider, exporter = _provider()
    recorder = PromptRecorder("bench", tracer_provider=provider)
    block: list[Any] = []

    def enter() -> None:
        block.append(recorder.__enter__())

    def leave() -> None:
        block.pop().__exit__(None, None, None)

    toggle = _Toggle(instrument_openai)
    client = canned.client()
    worker = _checked("ours", toggle, exporter, client, ("promptrecorder",), enter=enter, leave=leave)
    worker.info["recorder_records"] = len(recorder)

    # Two extra arms, for reference: instrumented but outside any recorder (the calls pass
    # through), and a recorder entered and exited around every call (its span included).
    call = canned.call

    def loop(n: int) -> None:
        for _ in range(n):
            call(client)

    def per_call_loop(n: int) -> None:
        for _ in range(n):
            with recorder:
                call(client)

    def instrumented() -> None:
        toggle.on()
        exporter.clear()

    def counted(n: int) -> dict[str, Any]:
        return {"spans_per_call": len(exporter.get_finished_spans()) / n}

    worker.arms += [
        Arm("instrumented_no_recorder", loop, instrumented, counted),
        Arm("recorder_per_call", per_call_loop, instrumented, counted),
    ]
    floor, floor_in_place = _sdk_floor(provider, exporter, toggle, client, enter, leave)

    def plain_calls() -> None:
        toggle.off()
        exporter.clear()

    worker.arms += [
        Arm("floor_sdk", floor, exporter.clear),
        Arm("sdk_calls_in_place", floor_in_place, plain_calls),
    ]
    return worker


def _sdk_floor(
    provider: Any,
    exporter: Any,
    toggle: _Toggle,
    client: Any,
    enter: Callable[[], None],
    leave: Callable[[], None],
) -> tuple[Callable[[int], None], Callable[[int], None]]:
    """Loops of only the SDK calls one recorded call makes, with the very attributes it exports.

    Per call: start the CLIENT span with its request attributes, set its input messages,
    set its outcome attributes, end it (exported), and add the prompt and response events
    to the recorder's span (a new one every 63 pairs, as segments roll over). No openai, no
    code of ours: what recording the call costs in the SDK alone, whoever's code drives it.
    Its per-call time is the floor of our per-call overhead. The second loop makes the same
    SDK calls after each plain (uninstrumented) openai call, so that they run with the
    caches an openai call leaves behind, as ours do: minus the plain call, the floor in place.
    """
    from opentelemetry.trace import SpanKind

    from promptrecorder.llm.instrument import _endpoint
    from promptrecorder.llm.openai_adapter import chat_request
    from promptrecorder.recording import semconv
    from promptrecorder.recording.calls import _request_attributes

    toggle.on()
    exporter.clear()
    enter()
    canned.call(client)
    leave()
    spans = exporter.get_finished_spans()
    call = next(span for span in spans if span.kind == SpanKind.CLIENT)
    block = next(span for span in spans if span.kind == SpanKind.INTERNAL)
    prompt_event, response_event = (
        next(event for event in block.events if event.name == name)
        for name in (semconv.EVENT_PROMPT, semconv.EVENT_RESPONSE)
    )
    request = chat_request(
        {"model": canned.MODEL, "messages": canned.MESSAGES, "temperature": 0.2},
        _endpoint(client.chat.completions),
    )
    exported = dict(call.attributes)
    start = {key: exported.pop(key) for key in _request_attributes(request, request.model, None)}
    messages = exported.pop(semconv.GEN_AI_INPUT_MESSAGES)
    outcome = exported
    prompt, response = dict(prompt_event.attributes), dict(response_event.attributes)
    tracer = provider.get_tracer(semconv.INSTRUMENTATION_NAME)
    name, client_kind, input_key = call.name, SpanKind.CLIENT, semconv.GEN_AI_INPUT_MESSAGES
    prompt_name, response_name = prompt_event.name, response_event.name

    def loop(n: int, between: Callable[[Any], Any] | None = None) -> None:
        segment = tracer.start_span("bench")
        for index in range(n):
            if between is not None:
                between(client)
            if index % 63 == 62:
                segment.end()
                segment = tracer.start_span("bench segment")
            span = tracer.start_span(name, kind=client_kind, attributes=start)
            span.set_attribute(input_key, messages)
            span.set_attributes(outcome)
            span.end()
            now = time.time_ns()
            segment.add_event(prompt_name, prompt, now)
            segment.add_event(response_name, response, now)
        segment.end()

    return loop, functools.partial(loop, between=canned.call)


# --- the micro rows (bench/overhead.py) ---------------------------------------------------


def worker_micro() -> Worker:
    import overhead

    arms = [Arm(case.name, batch=case.batch) for case in overhead.cases()]
    return Worker(
        "micro",
        arms,
        {
            "versions": overhead.environment(),
            "descriptions": {case.name: case.description for case in overhead.cases()},
        },
    )


WORKERS: dict[str, Callable[[], Worker]] = {
    "micro": worker_micro,
    "ours": worker_ours,
    "otel_genai": worker_otel_genai,
    "openinference": worker_openinference,
    "openllmetry": worker_openllmetry,
    "logfire": worker_logfire,
}


# --- the protocol -------------------------------------------------------------------------


def serve(kind: str) -> int:
    # Answers go to the stdout this process was started with; everything else to stderr.
    answers = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    worker: Worker | None = None
    shuffler = random.Random()
    for line in sys.stdin:
        command = json.loads(line)
        name = command["cmd"]
        if name == "quit":
            break
        if name == "setup":
            shuffler.seed(f"{command.get('seed', 0)}-{kind}")
            started = time.perf_counter()
            worker = WORKERS[kind]()
            batch_ns = float(command["batch_ms"]) * 1e6
            for arm in worker.arms:
                arm.calls = calibrate(arm, batch_ns)
            if kind != "micro":
                # One n for every arm of the worker: the plain arm's.
                for arm in worker.arms:
                    arm.calls = worker.arms[0].calls
            answer: dict[str, Any] = {
                "kind": kind,
                "arms": {arm.name: arm.calls for arm in worker.arms},
                "python": sys.version.split()[0],
                "executable": sys.executable,
                "platform": platform.platform(),
                "setup_s": round(time.perf_counter() - started, 2),
                **worker.info,
            }
        elif name == "round":
            assert worker is not None, "setup first"
            order = worker.arms[:]
            shuffler.shuffle(order)
            gc.collect()
            # This process sat idle while the other workers ran: caches and branch predictors
            # are cold. A short untimed pass of every arm first, so that no arm pays for it.
            for arm in order:
                arm.run(max(1, arm.calls // 8))
            results = {}
            for arm in order:
                results[arm.name] = run_arm(arm, arm.calls)
            answer = {"order": [arm.name for arm in order], "arms": results}
        else:
            answer = {"error": f"unknown command {name!r}"}
        answers.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1]))
