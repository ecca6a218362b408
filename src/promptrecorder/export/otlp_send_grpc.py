"""The OTLP/gRPC sender: one unary call of the trace service per ``send``, bytes in and out.

Built by ``senders.build_sender``; see that module for the contract. It uses grpcio's public
API only: a channel, ``channel.unary_unary`` with no (de)serializer, so that the request
bytes ``otlp_encode`` made go out as they are, and metadata for the headers. Importing this
module loads grpc, which is why ``build_sender`` imports it only for a gRPC sender.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urlsplit

import grpc  # type: ignore[import-untyped]  # grpcio ships no type stubs

from promptrecorder.export.otlp_send import (
    CAUSE_CLOSED_CONNECTION,
    CAUSE_REFUSED,
    CAUSE_TIMEOUT,
    CAUSE_TLS,
    CAUSE_TLS_NOT_SPOKEN,
    CAUSE_TLS_UNTRUSTED,
    CAUSE_UNRESOLVED,
    CAUSE_WRONG_PROTOCOL,
    CLIENT_CERTIFICATE_HINT,
    USER_AGENT,
    SenderOptions,
    SendResult,
    closed_result,
    delivered,
    partial_success,
    scrub,
    unexpected_result,
)

EXPORT_METHOD: Final = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

# The OTLP specification's retryable gRPC codes; RESOURCE_EXHAUSTED is decided by its message.
RETRYABLE_CODES: Final = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED", "CANCELLED", "DATA_LOSS"})
# gRPC's words when a message is over a size limit (the receiver's or the channel's own).
_SIZE_WORDS: Final = ("larger than max", "message too large", "max message size", "exceeds maximum")
_STATUS_DETAILS_KEY: Final = "grpc-status-details-bin"
_RETRY_INFO_TYPE: Final = "type.googleapis.com/google.rpc.RetryInfo"

# A channel that failed waits this long at most before trying to connect again (gRPC's own
# default grows to 120 s); calls during that wait fail at once as UNAVAILABLE, so a collector
# that came back would be found late. Connecting is cheap: retrying sooner costs nothing.
_CHANNEL_OPTIONS: Final = (
    ("grpc.primary_user_agent", USER_AGENT),
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.min_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5000),
    # One attempt per send(): delivery decides about retries.
    ("grpc.enable_retries", 0),
    # Our requests are bounded by delivery, not by the channel: the receiver's limit is the one
    # that matters, and its refusal is what says "split".
    ("grpc.max_send_message_length", -1),
)


# What grpc's details say of an UNAVAILABLE call, first match wins: the words to look for,
# whether the same request may pass later, our reason, and the cause. "timed out" comes last:
# a channel waiting to reconnect fails calls at once with its last attempt's error.
_UNAVAILABLE_CAUSES: tuple[tuple[tuple[str, ...], bool, str, str], ...] = (
    (("refused",), True, "connection refused ({where})", CAUSE_REFUSED),
    (
        ("certificate_verify_failed", "certificate verify failed"),
        False,
        "TLS: certificate verify failed ({where})",
        CAUSE_TLS_UNTRUSTED,
    ),
    (
        ("wrong_version_number", "http_request"),
        False,
        "TLS: the server answered in plain text ({where})",
        CAUSE_TLS_NOT_SPOKEN,
    ),
    (("ssl", "handshake", "tsi_"), False, "TLS: {details} ({where})", CAUSE_TLS),
    (
        ("http1", "http status", "parsing http/2"),
        True,
        "wrong protocol: {where} is not a gRPC server (it answers HTTP/1.x)",
        CAUSE_WRONG_PROTOCOL,
    ),
    (("dns", "resolve", "name or service not known"), True, "unknown host ({where})", CAUSE_UNRESOLVED),
    (
        ("socket closed", "reset", "end of tcp stream"),
        True,
        "connection closed without an answer ({where})",
        CAUSE_CLOSED_CONNECTION,
    ),
    (("timed out",), True, "timeout: connecting timed out ({where})", CAUSE_TIMEOUT),
)


class GrpcSender:
    """Sends OTLP/gRPC trace requests to one endpoint. See ``otlp_send.OtlpSender``."""

    protocol = "grpc"

    def __init__(self, options: SenderOptions) -> None:
        self.options = options
        self.destination = options.destination
        self.timeout = options.timeout
        parts = urlsplit(options.url if "://" in options.url else f"//{options.url}")
        host = parts.hostname or ""
        target = f"[{host}]:{parts.port or 4317}" if ":" in host else f"{host}:{parts.port or 4317}"
        if options.insecure:
            self._channel = grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
        else:
            self._channel = grpc.secure_channel(target, _credentials(options), options=_CHANNEL_OPTIONS)
        self._export = self._channel.unary_unary(
            EXPORT_METHOD, request_serializer=None, response_deserializer=None
        )
        # gRPC metadata keys must be lowercase ASCII; build_sender lowercased them already.
        self._metadata: Sequence[tuple[str, str]] = tuple(options.headers.items())
        self._compression = {"gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate}.get(
            options.compression, grpc.Compression.NoCompression
        )
        self._closed = threading.Event()

    def send(self, body: bytes, timeout: float) -> SendResult:
        if self._closed.is_set():
            return closed_result(self.destination)
        try:
            answer, _call = self._export.with_call(
                body, timeout=max(timeout, 0.001), metadata=self._metadata, compression=self._compression
            )
        except grpc.RpcError as error:
            if self._closed.is_set():
                return closed_result(self.destination)
            return self._refused(error, timeout)
        except ValueError as error:  # "Cannot invoke RPC on closed channel!"
            if self._closed.is_set():
                return closed_result(self.destination)
            return unexpected_result(error, self.options)
        except Exception as error:  # never into delivery's thread: a result that says what it was
            return unexpected_result(error, self.options)
        rejected, message = partial_success(answer if isinstance(answer, bytes) else b"")
        return delivered("OK", "gRPC OK", rejected, scrub(message, self.options))

    def close(self) -> None:
        self._closed.set()
        self._channel.close()

    def _refused(self, error: grpc.RpcError, timeout: float) -> SendResult:
        code_object = _call_attribute(error, "code")
        code = getattr(code_object, "name", None) or "UNKNOWN"
        details = scrub(str(_call_attribute(error, "details") or ""), self.options)
        reason = f"gRPC {code}: {details}" if details else f"gRPC {code}"
        lowered = details.lower()
        where = self.destination

        def result(*args: Any, **kwargs: Any) -> SendResult:
            kwargs.setdefault("detail", details)
            return SendResult(*args, **kwargs)

        if code == "UNAVAILABLE":
            for words, retryable, template, cause in _UNAVAILABLE_CAUSES:
                if any(word in lowered for word in words):
                    said = template.format(where=where, details=details)
                    if cause == CAUSE_CLOSED_CONNECTION and not self.options.insecure:
                        said += "" if self.options.client_certificate_file else CLIENT_CERTIFICATE_HINT
                    return result(False, retryable, False, said, status=code, cause=cause)
        if code == "DEADLINE_EXCEEDED":
            return result(
                False,
                True,
                False,
                f"timeout: no answer within {timeout:g} s ({where})",
                status=code,
                cause=CAUSE_TIMEOUT,
            )
        retry_after = _retry_delay(_call_attribute(error, "trailing_metadata"))
        if code == "RESOURCE_EXHAUSTED":
            if any(words in lowered for words in _SIZE_WORDS):
                return result(False, False, True, reason, status=code)
            return result(False, True, False, reason, retry_after, status=code)
        if code == "INVALID_ARGUMENT":
            return result(False, False, True, reason, status=code)
        retryable = code in RETRYABLE_CODES
        return result(False, retryable, False, reason, retry_after if retryable else None, status=code)


def _credentials(options: SenderOptions) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=_read(options.certificate_file),
        private_key=_read(options.client_key_file),
        certificate_chain=_read(options.client_certificate_file),
    )


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise ValueError(
            f"the OTLP certificate or key file {path!r} cannot be read: {error.strerror}"
        ) from None


def _call_attribute(error: grpc.RpcError, name: str) -> Any:
    """``error.code()`` and the like: a failed call's RpcError is also a ``grpc.Call``."""
    method = getattr(error, name, None)
    try:
        return method() if callable(method) else None
    except Exception:  # an RpcError that is not a Call: it has nothing to tell
        return None


def _retry_delay(trailing: Any) -> float | None:
    """The ``google.rpc.RetryInfo`` delay in the trailing metadata's status details, if any."""
    if not trailing:
        return None
    from google.protobuf.message import DecodeError  # type: ignore[import-untyped]  # no stubs
    from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]  # no py.typed

    for key, value in trailing:
        if key != _STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.type_url == _RETRY_INFO_TYPE:
                    info = error_details_pb2.RetryInfo.FromString(detail.value)
                    delay = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
                    return max(0.0, float(delay))
        except (DecodeError, ValueError):
            return None
    return None
