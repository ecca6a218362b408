"""The OTLP/HTTP sender: one POST of ``application/x-protobuf`` per ``send``, through ``requests``.

Built by ``senders.build_sender``; see that module for the contract. A redirect is not
followed: OTLP does not ask for it, and ``requests`` would turn the POST into a GET.
"""

from __future__ import annotations

import email.utils
import gzip
import json
import threading
import time
import zlib
from typing import Any

import requests

from promptrecorder.export.otlp_send import (
    CAUSE_CLOSED_CONNECTION,
    CAUSE_CONNECTION,
    CAUSE_REDIRECT,
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
    one_line,
    partial_success,
    scrub,
    unexpected_result,
)

# Answers after which the same request may pass later. The OTLP specification names
# 429/502/503/504; we also hold 408 (the stock exporter retries it) and every other 5xx
# transient: a collector's 500 is usually a passing fault, and a spooled batch must not be
# set aside for one.
RETRYABLE_STATUSES = frozenset({408, 429, *range(500, 600)})
# Refusals of this request's content or size: halves of it may pass.
SPLITTABLE_STATUSES = frozenset({400, 413})
# OpenSSL reasons for a handshake answered in plain text (the server does not speak TLS).
PLAIN_TEXT_REPLIES = frozenset(
    {"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"}
)


class PinnedCaSession(requests.Session):
    """A requests session whose own CA file is not overridden by the environment's bundle.

    ``requests`` lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's ``verify``
    (psf/requests#3829), so an OTEL_EXPORTER_OTLP_CERTIFICATE would be silently ignored on
    machines that set either; proxies and other environment settings still apply.
    """

    def merge_environment_settings(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        merged: dict[str, Any] = super().merge_environment_settings(*args, **kwargs)
        if isinstance(self.verify, str):
            merged["verify"] = self.verify
        return merged


class HttpSender:
    """Sends OTLP/HTTP protobuf requests to one traces URL. See ``otlp_send.OtlpSender``."""

    protocol = "http/protobuf"

    def __init__(self, options: SenderOptions) -> None:
        self.options = options
        self.destination = options.destination
        self.timeout = options.timeout
        self._session = PinnedCaSession()
        if options.certificate_file:
            self._session.verify = options.certificate_file
        if options.client_certificate_file:
            self._session.cert = (
                (options.client_certificate_file, options.client_key_file)
                if options.client_key_file
                else options.client_certificate_file
            )
        self._headers = {
            "User-Agent": USER_AGENT,
            **options.headers,
            "Content-Type": "application/x-protobuf",
        }
        if options.compression != "none":
            self._headers["Content-Encoding"] = options.compression
        self._closed = threading.Event()

    def send(self, body: bytes, timeout: float) -> SendResult:
        if self._closed.is_set():
            return closed_result(self.destination)
        try:
            payload = _compressed(body, self.options.compression)
            response = self._session.post(
                self.options.url,
                data=payload,
                headers=self._headers,
                timeout=max(timeout, 0.001),
                allow_redirects=False,
            )
            try:
                return self._answer(response)
            finally:
                response.close()
        except requests.RequestException as error:
            if self._closed.is_set():
                return closed_result(self.destination)
            return transport_failure(error, self.options, timeout)
        except Exception as error:  # never into delivery's thread: a result that says what it was
            return unexpected_result(error, self.options)

    def close(self) -> None:
        self._closed.set()
        self._session.close()

    def _answer(self, response: requests.Response) -> SendResult:
        code = int(response.status_code)
        said = f"HTTP {code} {response.reason or ''}".strip()
        if 200 <= code < 300:
            rejected, message = partial_success(response.content)
            if not rejected and "json" in response.headers.get("content-type", ""):
                rejected, message = _json_partial_success(response.content)
            return delivered(code, said, rejected, scrub(message, self.options))
        if 300 <= code < 400:
            where = scrub(response.headers.get("location") or "an unnamed location", self.options)
            return SendResult(
                False,
                False,
                False,
                f"{said}: redirect to {where}",
                status=code,
                cause=CAUSE_REDIRECT,
                detail=f"to {where}",
            )
        message = scrub(
            server_message(response.content, response.headers.get("content-type", "")), self.options
        )
        reason = f"{said}: {message}" if message else said
        retryable = code in RETRYABLE_STATUSES
        retry_after = retry_after_seconds(response.headers.get("retry-after")) if retryable else None
        return SendResult(
            False, retryable, code in SPLITTABLE_STATUSES, reason, retry_after, status=code, detail=message
        )


# What an ssl error says when the server ended the handshake: its alert that a client
# certificate is required, or, when the alert raced the request, only the connection's end.
_HANDSHAKE_ENDED = ("CERTIFICATE_REQUIRED", "certificate required", "EOF occurred in violation of protocol")


def transport_failure(error: requests.RequestException, options: SenderOptions, timeout: float) -> SendResult:
    """The result of an attempt that got no answer: what ``requests`` ran into, classified."""
    text = scrub(str(error), options)
    where = options.destination
    exceptions = requests.exceptions
    if isinstance(error, exceptions.SSLError):
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            return _failure(False, f"TLS: certificate verify failed ({where})", CAUSE_TLS_UNTRUSTED, text)
        if any(reason in text for reason in PLAIN_TEXT_REPLIES):
            return _failure(
                False,
                f"TLS: the server answered in plain text ({where})",
                CAUSE_TLS_NOT_SPOKEN,
                text,
            )
        if not options.client_certificate_file and any(word in text for word in _HANDSHAKE_ENDED):
            said = f"TLS: the server ended the handshake ({where}){CLIENT_CERTIFICATE_HINT}"
            return _failure(False, said, CAUSE_TLS, text)
        return _failure(False, f"TLS: {text} ({where})", CAUSE_TLS, text)
    if isinstance(error, exceptions.Timeout):
        return _failure(True, f"timeout: no answer within {timeout:g} s ({where})", CAUSE_TIMEOUT, text)
    if isinstance(error, exceptions.ConnectionError):
        lowered = text.lower()
        if "refused" in lowered:
            return _failure(True, f"connection refused ({where})", CAUSE_REFUSED, text)
        if "badstatusline" in lowered and "\\x00\\x00" in text:
            # The reply began with binary HTTP/2 frames: a gRPC server's answer to HTTP/1.1.
            return _failure(
                True,
                f"wrong protocol: {where} answered with HTTP/2 frames, as a gRPC port does",
                CAUSE_WRONG_PROTOCOL,
                "it answered with HTTP/2 frames, as a gRPC port does",
            )
        if "nameresolution" in lowered or "not known" in lowered or "getaddrinfo" in lowered:
            return _failure(True, f"unknown host ({where})", CAUSE_UNRESOLVED, text)
        if "timed out" in lowered:  # the upload stalled: requests words it "Connection aborted"
            return _failure(True, f"timeout: no answer within {timeout:g} s ({where})", CAUSE_TIMEOUT, text)
        if "aborted" in lowered or "reset" in lowered or "remotedisconnected" in lowered:
            return _failure(
                True,
                f"connection closed without an answer ({where})",
                CAUSE_CLOSED_CONNECTION,
                text,
            )
        return _failure(True, f"connection failed ({where}): {text}", CAUSE_CONNECTION, text)
    # InvalidURL and the like: the request cannot be sent as configured, retrying will not help.
    return _failure(False, f"{type(error).__name__}: {text} ({where})", CAUSE_CONNECTION, text)


def _compressed(body: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(body, compresslevel=6)
    if compression == "deflate":
        return zlib.compress(body, 6)
    return body


def _failure(retryable: bool, reason: str, cause: str, detail: str) -> SendResult:
    return SendResult(False, retryable, False, one_line(reason), cause=cause, detail=detail)


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header (seconds, or an HTTP date) as seconds from now; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds or seconds == float("inf"):  # NaN or infinite: not a usable delay
        return None
    return max(0.0, seconds)


def server_message(body: bytes, content_type: str) -> str:
    """The text of an error reply: a ``google.rpc.Status`` message, a JSON ``message``, or the text."""
    if not body:
        return ""
    if "protobuf" in content_type:
        from google.protobuf.message import DecodeError  # type: ignore[import-untyped]  # no stubs
        from google.rpc import status_pb2  # type: ignore[import-untyped]  # ships no py.typed

        try:
            return one_line(str(status_pb2.Status.FromString(body).message))
        except (DecodeError, ValueError):  # not a Status after all: show what can be shown
            return one_line(body.decode("utf-8", "replace"))
    text = body.decode("utf-8", "replace")
    if "json" in content_type:
        try:
            data = json.loads(text)
        except ValueError:
            return one_line(text)
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            return one_line(data["message"])
    return one_line(text)


def _json_partial_success(body: bytes) -> tuple[int, str]:
    """For a server that answers OTLP/JSON to our protobuf request (some proxies do)."""
    try:
        partial = json.loads(body).get("partialSuccess") or {}
        return max(0, int(partial.get("rejectedSpans") or 0)), one_line(
            str(partial.get("errorMessage") or "")
        )
    except (ValueError, AttributeError, TypeError):
        return 0, ""
