"""The scripted session behind ``promptrecorder demo``, on a real model or an offline stand-in.

The session talks through ``ChatBot`` and ``SimpleBot`` either way, so the demo runs the
real bot and openai client code. Which model answers:

- ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` set: that server (api.openai.com by default),
  model ``$PROMPTRECORDER_DEMO_MODEL`` (default ``gpt-4o-mini``). A local OpenAI-compatible
  server needs no key: ``OPENAI_BASE_URL=http://127.0.0.1:11434/v1
  PROMPTRECORDER_DEMO_MODEL=llama3.2 promptrecorder demo`` (Ollama; for llama.cpp's or
  vLLM's server use their ``/v1`` URL and the model name they serve).
- neither set: the offline stand-in, an ``openai.OpenAI`` client whose HTTP transport
  answers from a small keyword script, clearly labelled as such (model
  ``offline-stand-in``), with realistic token usage. It needs no key and no network.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import openai
from opentelemetry import trace

from promptrecorder import settings
from promptrecorder.errors import DemoModelError
from promptrecorder.llm import openai_internals
from promptrecorder.llm.bots import ChatBot, SimpleBot
from promptrecorder.recording.recorder import PromptRecorder

STAND_IN_MODEL = "offline-stand-in"
STAND_IN_BASE_URL = "http://offline-stand-in.invalid/v1"  # .invalid never resolves

_LABEL = "[offline stand-in model] "
_SCRIPT = {
    "summarise": "Ticket 42: the third-floor printer jams on every duplex job since Monday.",
    "reply": "Thanks for the report; a technician will look at the duplex unit today.",
    "title": "Third-floor printer: duplex jams",
}
_TRIAGE_PROMPT = "You triage IT support tickets. Answer in one short sentence."
_TITLE_PROMPT = "You write incident report titles: five words at most."


@dataclass(frozen=True)
class DemoModel:
    """The model the demo talks to: its clients, its name, and whether it is the stand-in."""

    client: openai.OpenAI
    async_client: openai.AsyncOpenAI | None
    name: str
    offline: bool

    @property
    def server(self) -> str:
        return str(self.client.base_url).rstrip("/")

    def describe(self) -> str:
        """One line saying which model and server answer."""
        if self.offline:
            return (
                f"model {self.name}: the offline stand-in (scripted answers, no API key needed; "
                f"set {settings.OPENAI_API_KEY} or {settings.OPENAI_BASE_URL} to use a real model)"
            )
        return f"model {self.name} at {self.server}"


@dataclass(frozen=True)
class DemoResult:
    recorder: PromptRecorder
    trace_id: str | None
    model: str = STAND_IN_MODEL


def choose_model(environ: Mapping[str, str] | None = None) -> DemoModel:
    """The real model when ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is set, else the stand-in."""
    env = os.environ if environ is None else environ
    key = (env.get(settings.OPENAI_API_KEY) or "").strip()
    base_url = (env.get(settings.OPENAI_BASE_URL) or "").strip()
    if not key and not base_url:
        return stand_in_model()
    client = openai.OpenAI(
        # Local servers want no key, but openai refuses to start without one.
        api_key=key or "unused",
        base_url=base_url or None,
        max_retries=1,
        timeout=60.0,
    )
    name = (env.get(settings.PROMPTRECORDER_DEMO_MODEL) or "").strip() or settings.DEFAULT_DEMO_MODEL
    return DemoModel(client, None, name, offline=False)


def run_session(
    model: DemoModel | None = None,
    *,
    say: Callable[[str], object] = print,
    tracer_provider: trace.TracerProvider | None = None,
) -> DemoResult:
    """Two prompts in an outer recorder (the second streamed) and one in a nested recorder.

    ``model`` defaults to ``choose_model()``; ``say`` gets one line naming it first;
    ``tracer_provider`` is the recorders' (the global one when None).

    Raises:
        DemoModelError: a real model server failed (the recorder's span records the error).
    """
    model = model or choose_model()
    say(model.describe())
    triage = ChatBot(_TRIAGE_PROMPT, model=model.name, client=model.client, async_client=model.async_client)
    titles = SimpleBot(_TITLE_PROMPT, model=model.name, client=model.client, async_client=model.async_client)
    recorder = PromptRecorder("demo-session", attributes={"demo": True}, tracer_provider=tracer_provider)
    try:
        with recorder:
            triage("Summarise ticket 42: the printer on floor 3 jams on duplex jobs.")
            "".join(triage.stream("Draft a one-line reply to the ticket."))
            with PromptRecorder("demo-incident-title", tracer_provider=tracer_provider):
                titles("Suggest a title for the incident report.")
    except openai.OpenAIError as error:
        raise DemoModelError(explain_failure(error, model)) from error
    records = recorder.records
    return DemoResult(recorder, records[0].trace_id if records else None, model.name)


def explain_failure(error: openai.OpenAIError, model: DemoModel) -> str:
    """One sentence: what failed at the model server, and what to try."""
    server = model.server
    if isinstance(error, openai.AuthenticationError):
        what = f"{server} refused the API key (HTTP 401): check {settings.OPENAI_API_KEY}"
    elif isinstance(error, openai.APITimeoutError):
        what = f"{server} did not answer in time: check that the server is up and the model loaded"
    elif isinstance(error, openai.APIConnectionError):
        cause = error.__cause__ or error
        what = f"could not reach {server} ({cause}): check that the server runs and {settings.OPENAI_BASE_URL} is right"
    elif isinstance(error, openai.NotFoundError):
        what = f"{server} has no model {model.name!r} (HTTP 404): set {settings.PROMPTRECORDER_DEMO_MODEL} to one it serves"
    elif isinstance(error, openai.APIStatusError):
        what = f"{server} answered HTTP {error.status_code} ({error.message})"
    else:
        what = f"the call to {server} failed ({error})"
    return (
        f"the demo's model call failed: {what}; "
        f"unset {settings.OPENAI_API_KEY} and {settings.OPENAI_BASE_URL} to use the offline stand-in instead."
    )


# --- the offline stand-in ----------------------------------------------------------------


def openai_http_module() -> ModuleType:
    """The HTTP library the installed openai is built on: httpx2 (openai 3.x) or httpx (1.x, 2.x).

    A transport or client of the other library is not accepted by openai, so the stand-in
    (and a test's mock transport) must be built from this one.
    """
    return openai_internals.http_library(openai)


def stand_in_model() -> DemoModel:
    """The offline stand-in: openai clients on a transport that answers from the script."""
    http = openai_http_module()
    transport = http.MockTransport(_stand_in_answer)
    options: dict[str, Any] = {"api_key": STAND_IN_MODEL, "base_url": STAND_IN_BASE_URL, "max_retries": 0}
    return DemoModel(
        openai.OpenAI(http_client=http.Client(transport=transport), **options),
        openai.AsyncOpenAI(http_client=http.AsyncClient(transport=transport), **options),
        STAND_IN_MODEL,
        offline=True,
    )


def scripted_answer(prompt: str) -> str:
    """The stand-in's answer to ``prompt``: the script's line for its first keyword, labelled."""
    key = next((word for word in _SCRIPT if word in prompt.lower()), None)
    return _LABEL + (_SCRIPT[key] if key else f"I have no scripted answer for {prompt!r}.")


def _stand_in_answer(request: Any) -> Any:
    """The stand-in server: a ``chat.completions`` request in, a completion (or its stream) out."""
    http = openai_http_module()
    body = json.loads(request.content)
    messages = body.get("messages") or []
    prompt = next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    answer = scripted_answer(prompt)
    time.sleep(0.01)  # a stand-in for network latency, so the trace shows a duration
    usage = _usage(sum(_tokens(_text(m.get("content"))) + 4 for m in messages) + 3, _tokens(answer))
    reply = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "created": int(time.time()),
        "model": STAND_IN_MODEL,
        "system_fingerprint": None,
    }
    if not body.get("stream"):
        message = {"role": "assistant", "content": answer, "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
        completion = {**reply, "object": "chat.completion", "choices": [choice], "usage": usage}
        return http.Response(200, json=completion)
    chunk = {**reply, "object": "chat.completion.chunk"}
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": word} for word in _words(answer)]
    events = [{**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]} for delta in deltas]
    events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append({**chunk, "choices": [], "usage": usage})
    frames = "".join(f"data: {json.dumps(event)}\n\n" for event in events) + "data: [DONE]\n\n"
    return http.Response(200, headers={"content-type": "text/event-stream"}, content=frames.encode())


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _tokens(text: str) -> int:
    """About as many tokens as OpenAI's tokenizers count for English text (4 characters each)."""
    return max(1, round(len(text) / 4))


def _words(text: str) -> Iterable[str]:
    words = text.split(" ")
    return [word if index == 0 else " " + word for index, word in enumerate(words)]


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }
