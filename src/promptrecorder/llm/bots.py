"""``SimpleBot`` and ``ChatBot``: a system prompt in front of an openai client, recorded.

Every call goes through ``openai_calls.record_create`` / ``arecord_create``, the same path
``instrument_openai`` patches into the client, so inside ``with recorder:`` each call is a
CLIENT span ``chat {model}`` under the recorder's span plus a prompt/response pair (with
the whole message list sent, the model the server reports, usage, finish reasons and tool
calls), and outside any recorder it is a plain openai call. A bot whose client is also
instrumented records each call once.

One bot, four ways to call it (one design for sync and async, no ``AsyncSimpleBot``):

=====================================  ==========================================
``bot(message)``                       a ``BotResponse``, through ``client``
``await bot.acall(message)``           the same, through ``async_client``
``for text in bot.stream(message)``    text chunks as they arrive
``async for text in bot.astream(m)``   the same, async
=====================================  ==========================================

Clients: pass ``client=`` (an ``openai.OpenAI``), ``async_client=`` (an
``openai.AsyncOpenAI``), both, or neither. The one missing is built on first use: from the
other's settings (API key, base URL, organization, project, timeout, max retries, default
headers and query), or, with neither, ``openai.OpenAI()`` / ``openai.AsyncOpenAI()`` as openai
builds them (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``), so any OpenAI-compatible server
(vLLM, llama.cpp, Ollama, LiteLLM) works. A custom ``http_client``, an Azure client or an
API-key callback is not copied: pass both clients for those.

Streaming asks for token usage with ``stream_options={"include_usage": True}`` unless the
bot was given ``stream_options`` itself; some OpenAI-compatible servers reject the field,
so ``stream_options=None`` sends none (and usage is then recorded only if the server sends
it anyway). A stream's record is written when it ends: read to the end (``complete``), left
early or closed (what arrived, ``complete=False``), or failed (the error, re-raised).

Threading: a ``SimpleBot`` keeps no state between calls and may be shared by threads and
tasks. A ``ChatBot`` is one conversation: calls may come from any thread, but run them one
at a time, or replies are appended in the order they finish.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import openai

from promptrecorder.llm import openai_internals
from promptrecorder.llm.openai_adapter import CHAT, chat_result, chunk_text
from promptrecorder.llm.openai_calls import arecord_create, record_create
from promptrecorder.recording.calls import Endpoint, describe_endpoint
from promptrecorder.recording.content import check_conversation_id
from promptrecorder.recording.records import PromptRecord

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion

DEFAULT_MODEL = "gpt-4o-mini"
# What a stream asks for unless the bot was given its own ``stream_options``.
_USAGE_IN_STREAM: Mapping[str, Any] = MappingProxyType({"include_usage": True})
# Request fields the bot sets itself, and where to set them instead.
_RESERVED = {
    "messages": "the bot builds it from the system prompt and the message",
    "stream": "call bot.stream(message) or bot.astream(message)",
}


@dataclass(frozen=True, slots=True)
class BotResponse:
    """A bot's reply: its text, the raw ``ChatCompletion``, and the record it made.

    ``str(response)`` is the text. ``record`` is None outside any recorder.
    """

    content: str
    completion: ChatCompletion
    record: PromptRecord | None = None

    def __str__(self) -> str:
        return self.content


class SimpleBot:
    """A system prompt and a model: each message is answered on its own, with no memory.

    Example:
        >>> bot = SimpleBot("You are a terse assistant.", model="gpt-4o-mini")  # doctest: +SKIP
        >>> with PromptRecorder("triage") as recorder:  # doctest: +SKIP
        ...     print(bot("Summarise ticket 42"))
        ...     text = "".join(bot.stream("Draft a reply"))
        >>> recorder.records[0].input_tokens  # doctest: +SKIP
        27

    Args:
        system_prompt: the system message sent before every message.
        model: the model to ask for.
        client: an ``openai.OpenAI`` client for ``bot(...)`` and ``bot.stream(...)``.
        async_client: an ``openai.AsyncOpenAI`` client for ``acall`` and ``astream``.
        **params: passed to ``chat.completions.create`` on every call (``temperature``,
            ``max_tokens``, ``tools``, ``extra_headers``...); ``stream_options`` only on
            streamed calls (``None``: send none).

    Raises:
        TypeError, ValueError: an argument is not of the documented form.
    """

    def __init__(
        self,
        system_prompt: str,
        *,
        model: str = DEFAULT_MODEL,
        client: openai.OpenAI | None = None,
        async_client: openai.AsyncOpenAI | None = None,
        **params: Any,
    ) -> None:
        if not isinstance(system_prompt, str):
            raise TypeError(f"`system_prompt` must be a str, got {_describe(system_prompt)}")
        _check_sendable("system_prompt", system_prompt)
        if not isinstance(model, str):
            raise TypeError(f"`model` must be a non-empty str, got {_describe(model)}")
        if not model.strip():
            raise ValueError(f"`model` must be a non-empty str, got {model!r}")
        for name, instead in _RESERVED.items():
            if name in params:
                raise TypeError(
                    f"`{name}` must not be a bot parameter ({instead}), got {name}={params[name]!r}"
                )
        self.system_prompt = system_prompt
        self.model = model
        self._conversation_id: str | None = None  # a SimpleBot answers each message on its own
        self._stream_options = params.pop("stream_options", _USAGE_IN_STREAM)
        self._params = params
        self._clients = _Clients(client, async_client)

    @property
    def params(self) -> Mapping[str, Any]:
        """The extra request parameters, as given (``stream_options`` included when given)."""
        if self._stream_options is _USAGE_IN_STREAM:
            return MappingProxyType(self._params)
        return MappingProxyType({**self._params, "stream_options": self._stream_options})

    @property
    def client(self) -> openai.OpenAI:
        """The sync client (built on first use when none was given)."""
        return self._clients.sync()

    @property
    def async_client(self) -> openai.AsyncOpenAI:
        """The async client (built on first use when none was given)."""
        return self._clients.async_()

    def __repr__(self) -> str:
        prompt = self.system_prompt if len(self.system_prompt) <= 40 else self.system_prompt[:37] + "..."
        return f"{type(self).__name__}({prompt!r}, model={self.model!r})"

    # --- whole replies -------------------------------------------------------------------

    def __call__(self, message: str) -> BotResponse:
        """Send ``message`` and return the reply.

        Raises:
            TypeError: ``message`` is not a str.
            openai.OpenAIError: whatever the client raised (the very same exception).
        """
        sent = self._messages(_check_message(message))
        client = self._clients.sync()
        records: list[PromptRecord] = []
        completion = record_create(
            client.chat.completions.create,
            (),
            self._request(sent, stream=False),
            api=CHAT,
            endpoint=_endpoint(client),
            on_record=records.append,
            conversation_id=self._conversation_id,
        )
        return self._reply(message, completion, records)

    async def acall(self, message: str) -> BotResponse:
        """The async twin of ``bot(message)``, through ``async_client``."""
        sent = self._messages(_check_message(message))
        client = self._clients.async_()
        records: list[PromptRecord] = []
        completion = await arecord_create(
            client.chat.completions.create,
            (),
            self._request(sent, stream=False),
            api=CHAT,
            endpoint=_endpoint(client),
            on_record=records.append,
            conversation_id=self._conversation_id,
        )
        return self._reply(message, completion, records)

    def _reply(self, message: str, completion: Any, records: list[PromptRecord]) -> BotResponse:
        content = chat_result(completion).text
        self._remember(message, content)
        return BotResponse(content, completion, records[0] if records else None)

    # --- streams -------------------------------------------------------------------------

    def stream(self, message: str) -> Iterator[str]:
        """Send ``message`` and yield the reply's text as it arrives.

        The request goes out when iteration starts. Close the iterator (or break out of
        the loop) to stop early: the stream is closed and the call recorded as incomplete.

        Raises:
            TypeError: ``message`` is not a str (at once, not on iteration).
            openai.OpenAIError: whatever the client raised, also midway through the stream.
        """
        sent = self._messages(_check_message(message))
        return self._stream(message, sent)

    def astream(self, message: str) -> AsyncIterator[str]:
        """The async twin of ``stream``, through ``async_client``.

        An abandoned async generator is closed only when the event loop finalises it; use
        ``contextlib.aclosing(bot.astream(...))`` to have it closed (and recorded) at once.
        """
        sent = self._messages(_check_message(message))
        return self._astream(message, sent)

    def _stream(self, message: str, sent: list[dict[str, Any]]) -> Iterator[str]:
        client = self._clients.sync()
        stream = record_create(
            client.chat.completions.create,
            (),
            self._request(sent, stream=True),
            api=CHAT,
            endpoint=_endpoint(client),
            conversation_id=self._conversation_id,
        )
        pieces: list[str] = []
        try:
            for chunk in stream:
                text = chunk_text(chunk)
                if text:
                    pieces.append(text)
                    yield text
        finally:
            # Exhausted, failed, closed or abandoned: the HTTP response is released and a
            # call not read to its end is recorded as incomplete (a finished one ignores it).
            stream.close()
        self._remember(message, "".join(pieces))

    async def _astream(self, message: str, sent: list[dict[str, Any]]) -> AsyncIterator[str]:
        client = self._clients.async_()
        stream = await arecord_create(
            client.chat.completions.create,
            (),
            self._request(sent, stream=True),
            api=CHAT,
            endpoint=_endpoint(client),
            conversation_id=self._conversation_id,
        )
        pieces: list[str] = []
        try:
            async for chunk in stream:
                text = chunk_text(chunk)
                if text:
                    pieces.append(text)
                    yield text
        finally:
            await stream.close()
        self._remember(message, "".join(pieces))

    # --- what a bot sends and keeps -------------------------------------------------------

    def _messages(self, message: str) -> list[dict[str, Any]]:
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": message}]

    def _remember(self, message: str, reply: str) -> None:
        """Called after a successful reply; a SimpleBot keeps nothing."""

    def _request(self, messages: list[dict[str, Any]], *, stream: bool) -> dict[str, Any]:
        request: dict[str, Any] = {"model": self.model, "messages": messages, **self._params}
        if stream:
            request["stream"] = True
            if self._stream_options is not None:
                request["stream_options"] = dict(self._stream_options)
        return request


class ChatBot(SimpleBot):
    """A ``SimpleBot`` that remembers the conversation: each call sends the whole history.

    The user message and the reply's text join the history only once the reply has come
    back whole (a failed call, or a stream left early, leaves it as it was). The recorded
    input messages are the whole list sent: system prompt, history, new message.

    Example:
        >>> bot = ChatBot("You are a patient tutor.")  # doctest: +SKIP
        >>> bot("What is a monad?").content  # doctest: +SKIP
        >>> bot("Explain it again, more simply.").content  # doctest: +SKIP
        >>> len(bot.history)  # doctest: +SKIP
        4

    Takes the same arguments as ``SimpleBot``, and:

    Args:
        conversation_id: the conversation's id, exported as ``gen_ai.conversation.id`` on
            each call's span and kept on its records (``PromptRecord.conversation_id``); a
            new ``uuid4().hex`` when not given. Pass your application's own id (a chat
            session, a ticket) to find the conversation by it in a backend.

    Raises:
        TypeError, ValueError: an argument is not of the documented form.
    """

    def __init__(
        self,
        system_prompt: str,
        *,
        model: str = DEFAULT_MODEL,
        client: openai.OpenAI | None = None,
        async_client: openai.AsyncOpenAI | None = None,
        conversation_id: str | None = None,
        **params: Any,
    ) -> None:
        super().__init__(system_prompt, model=model, client=client, async_client=async_client, **params)
        self.conversation_id = uuid.uuid4().hex if conversation_id is None else conversation_id
        self._history: list[dict[str, Any]] = []
        self._history_lock = threading.Lock()

    @property
    def conversation_id(self) -> str:
        """This conversation's id (``gen_ai.conversation.id``); settable, e.g. after ``reset``."""
        return self._conversation_id  # type: ignore[return-value]  # always set by __init__

    @conversation_id.setter
    def conversation_id(self, value: str) -> None:
        self._conversation_id = check_conversation_id(value)

    @property
    def history(self) -> list[dict[str, Any]]:
        """A copy of the conversation so far (user and assistant messages, no system prompt)."""
        with self._history_lock:
            return [dict(message) for message in self._history]

    def reset(self) -> None:
        """Forget the conversation; the system prompt stays."""
        with self._history_lock:
            self._history.clear()

    def _messages(self, message: str) -> list[dict[str, Any]]:
        with self._history_lock:
            history = [dict(turn) for turn in self._history]
        return [
            {"role": "system", "content": self.system_prompt},
            *history,
            {"role": "user", "content": message},
        ]

    def _remember(self, message: str, reply: str) -> None:
        with self._history_lock:
            self._history += [{"role": "user", "content": message}, {"role": "assistant", "content": reply}]


# --- clients ---------------------------------------------------------------------------


class _Clients:
    """A bot's sync and async openai clients; the missing one is built on first use."""

    def __init__(self, client: object, async_client: object) -> None:
        if client is not None and not isinstance(client, openai.OpenAI):
            hint = "; pass it as `async_client=`" if isinstance(client, openai.AsyncOpenAI) else ""
            raise TypeError(
                f"`client` must be an openai.OpenAI client or None, got {_describe(client)}{hint}"
            )
        if async_client is not None and not isinstance(async_client, openai.AsyncOpenAI):
            hint = "; pass it as `client=`" if isinstance(async_client, openai.OpenAI) else ""
            raise TypeError(
                f"`async_client` must be an openai.AsyncOpenAI client or None, got {_describe(async_client)}{hint}"
            )
        self._sync: openai.OpenAI | None = client
        self._async: openai.AsyncOpenAI | None = async_client
        self._lock = threading.Lock()

    def sync(self) -> openai.OpenAI:
        with self._lock:
            if self._sync is None:
                source = self._async
                self._sync = (
                    openai.OpenAI() if source is None else openai.OpenAI(**_settings(source, "client"))
                )
            return self._sync

    def async_(self) -> openai.AsyncOpenAI:
        with self._lock:
            if self._async is None:
                source = self._sync
                self._async = (
                    openai.AsyncOpenAI()
                    if source is None
                    else openai.AsyncOpenAI(**_settings(source, "async_client"))
                )
            return self._async


def _settings(source: openai.OpenAI | openai.AsyncOpenAI, missing: str) -> dict[str, Any]:
    """The settings of ``source`` that a client of the other kind can be built from."""
    if type(source) not in (openai.OpenAI, openai.AsyncOpenAI) or openai_internals.has_api_key_provider(
        source
    ):
        raise TypeError(
            f"`{missing}` must be given to call this way: a {type(source).__name__} client's settings "
            f"cannot be copied to the other kind of client, got {missing}=None"
        )
    headers, query = openai_internals.given_headers_and_query(source)
    return {
        "api_key": source.api_key,
        "organization": source.organization,
        "project": getattr(source, "project", None),
        "base_url": source.base_url,
        "timeout": source.timeout,
        "max_retries": source.max_retries,
        # The headers and query the client was given (``default_headers`` would add auth).
        "default_headers": headers,
        "default_query": query,
    }


def _endpoint(client: openai.OpenAI | openai.AsyncOpenAI) -> Endpoint:
    return describe_endpoint(client.base_url, type(client).__name__)


def _check_message(message: object) -> str:
    if not isinstance(message, str):
        raise TypeError(f"`message` must be a str, got {_describe(message)}")
    return _check_sendable("message", message)


def _check_sendable(name: str, text: str) -> str:
    """Refuse text no API can be sent: a lone surrogate has no UTF-8 form, and the client's
    JSON encoder would fail on it deep inside the request."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(
                f"`{name}` must be valid Unicode text, got a lone surrogate {text[error.start]!r} "
                f"at index {error.start}; decode the bytes it came from with errors='replace'"
            ) from None
    return text


def _describe(value: object) -> str:
    text = repr(value)
    text = text if len(text) <= 80 else text[:77] + "..."
    return text if isinstance(value, (str, int, float, type(None))) else f"{type(value).__name__}: {text}"
