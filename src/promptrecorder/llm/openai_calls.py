"""Recording one openai ``create`` call, sync or async, whole or streamed.

``record_create`` and ``arecord_create`` wrap a ``create`` method of the openai client:
the bots call them directly, and ``instrument_openai`` patches them in. They hand back
exactly what openai returned, except that a stream comes back inside a thin proxy that
watches the chunks go by and records the call when the stream ends: exhausted, closed,
failed, left early, or garbage-collected. The proxy forwards everything else to the stream.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from promptrecorder._diagnostics import warn_once
from promptrecorder.llm import openai_internals
from promptrecorder.llm.openai_adapter import (
    CHAT,
    ChatStreamReader,
    ResponsesStreamReader,
    chat_request,
    chat_result,
    response_result,
    responses_request,
)
from promptrecorder.recording.calls import CallRequest, CallResult, Endpoint, LLMCall, inside_call
from promptrecorder.recording.records import PromptRecord

logger = logging.getLogger(__name__)


class _StreamReader(Protocol):
    def add(self, item: Any) -> str: ...
    def finish(self) -> CallResult: ...


def _request(
    api: str, kwargs: dict[str, Any], endpoint: Endpoint, conversation_id: str | None
) -> CallRequest:
    request = chat_request(kwargs, endpoint) if api == CHAT else responses_request(kwargs, endpoint)
    request.conversation_id = conversation_id
    return request


def _reader(api: str) -> _StreamReader:
    return ChatStreamReader() if api == CHAT else ResponsesStreamReader()


def _result(api: str, reply: Any) -> CallResult:
    return chat_result(reply) if api == CHAT else response_result(reply)


def _is_stream(reply: Any) -> bool:
    # openai's Stream / AsyncStream in every version; checked by name so that no class
    # from a particular openai version is imported.
    return type(reply).__name__ in ("Stream", "AsyncStream")


def _finish_whole(call: LLMCall, api: str, reply: Any) -> PromptRecord | None:
    complete = True
    try:
        kind = type(reply).__name__
        if kind == "LegacyAPIResponse" and openai_internals.raw_response_is_read(reply):
            # ``with_raw_response``: the body is read already, and parse() caches what it
            # builds, so the caller's own parse() gets this very object.
            result = _result(api, reply.parse())
        elif kind in _RAW_REPLIES:
            # A raw stream or ``with_streaming_response``: the body is the caller's to read.
            result, complete = CallResult(), False
        else:
            result = _result(api, reply)
    except Exception as error:  # an unexpected reply shape: keep the call, say so once
        warn_once(logger, "reply-shape", "promptrecorder could not read an openai reply (%r)", error)
        result = CallResult()
    return call.finish(result, complete=complete)


# openai's raw-response wrappers, in every version, by name as in ``_is_stream``.
_RAW_REPLIES = ("LegacyAPIResponse", "APIResponse", "AsyncAPIResponse")


def record_create(
    create: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    api: str,
    endpoint: Endpoint,
    on_record: Callable[[PromptRecord], object] | None = None,
    conversation_id: str | None = None,
) -> Any:
    """Call ``create(*args, **kwargs)``, recording it inside an active recorder.

    ``on_record`` receives the record of a whole (not streamed) reply, for callers such as
    the bots that hand it back; ``conversation_id`` is a ``ChatBot``'s (else the recorder's
    is used).
    """
    call = _start(api, kwargs, endpoint, conversation_id)
    if call is None:
        return create(*args, **kwargs)
    try:
        with inside_call():
            reply = create(*args, **kwargs)
    except BaseException as error:
        call.fail(error)
        raise
    return _handle_reply(call, api, reply, on_record, RecordedStream)


async def arecord_create(
    create: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    api: str,
    endpoint: Endpoint,
    on_record: Callable[[PromptRecord], object] | None = None,
    conversation_id: str | None = None,
) -> Any:
    """The async twin of ``record_create``."""
    call = _start(api, kwargs, endpoint, conversation_id)
    if call is None:
        return await create(*args, **kwargs)
    try:
        with inside_call():
            reply = await create(*args, **kwargs)
    except BaseException as error:
        call.fail(error)
        raise
    return _handle_reply(call, api, reply, on_record, RecordedAsyncStream)


def _handle_reply(
    call: LLMCall,
    api: str,
    reply: Any,
    on_record: Callable[[PromptRecord], object] | None,
    stream_type: type[RecordedStream | RecordedAsyncStream],
) -> Any:
    """What record_create and arecord_create do with what openai returned."""
    if _is_stream(reply):
        return stream_type(reply, call, _reader(api))
    record = _finish_whole(call, api, reply)
    if record is not None and on_record is not None:
        on_record(record)
    return reply


def _start(
    api: str, kwargs: dict[str, Any], endpoint: Endpoint, conversation_id: str | None = None
) -> LLMCall | None:
    try:
        return LLMCall.start(_request(api, kwargs, endpoint, conversation_id))
    except Exception as error:  # never let reading the request stop the call itself
        warn_once(logger, "request-shape", "promptrecorder could not read an openai request (%r)", error)
        return None


class _RecordedStreamBase:
    """What the sync and async stream proxies share: the call, the reader, the ending."""

    def __init__(self, stream: Any, call: LLMCall, reader: _StreamReader) -> None:
        self._stream = stream
        self._call = call
        self._reader = reader

    def _take(self, item: Any) -> str:
        self._call.first_chunk()
        try:
            return self._reader.add(item)
        except Exception as error:  # an unexpected chunk shape must not break the stream
            warn_once(logger, "chunk-shape", "promptrecorder could not read a streamed chunk (%r)", error)
            return ""

    def _finish(self, *, complete: bool) -> None:
        self._call.finish(self._reader.finish(), complete=complete)

    def _fail(self, error: BaseException) -> None:
        self._call.fail(error, self._reader.finish())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __del__(self) -> None:
        # A stream left early and dropped: record what arrived, marked incomplete. A
        # finished call ignores this.
        call = self.__dict__.get("_call")
        if call is not None:
            self._finish(complete=False)


class RecordedStream(_RecordedStreamBase):
    """A sync openai stream that records its call when it ends."""

    def __iter__(self) -> RecordedStream:
        return self

    def __next__(self) -> Any:
        try:
            item = next(self._stream)
        except StopIteration:
            self._finish(complete=True)
            raise
        except BaseException as error:
            self._fail(error)
            raise
        self._take(item)
        return item

    def close(self) -> None:
        """Close the stream; a call not read to its end is recorded as incomplete."""
        try:
            self._stream.close()
        finally:
            self._finish(complete=False)

    def __enter__(self) -> RecordedStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class RecordedAsyncStream(_RecordedStreamBase):
    """An async openai stream that records its call when it ends."""

    def __aiter__(self) -> RecordedAsyncStream:
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self._stream.__anext__()
        except StopAsyncIteration:
            self._finish(complete=True)
            raise
        except BaseException as error:
            self._fail(error)
            raise
        self._take(item)
        return item

    async def close(self) -> None:
        """Close the stream; a call not read to its end is recorded as incomplete."""
        try:
            await self._stream.close()
        finally:
            self._finish(complete=False)

    async def __aenter__(self) -> RecordedAsyncStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
