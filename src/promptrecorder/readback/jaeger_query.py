"""Reading recorded pairs back from Jaeger's query API v3 (OTLP JSON over HTTP).

Jaeger 2.x serves ``GET /api/v3/traces/{trace_id}`` and ``GET /api/v3/traces?query...``
on its query port (16686 by default), answering ``{"result": {"resourceSpans": [...]}}``;
``readback.read_otlp_json`` turns that into records. Only the standard library is used.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from promptrecorder.credentials import mask_url
from promptrecorder.errors import TraceNotFoundError, TraceReadError
from promptrecorder.readback.otlp_json import error_message, json_documents, read_otlp_json
from promptrecorder.recording.records import PromptRecord

# Jaeger's UI asks for 20 traces by default; Jaeger 2.12 needs the count given.
DEFAULT_TRACE_LIMIT = 20
DEFAULT_SINCE = timedelta(hours=1)
DEFAULT_TIMEOUT_S = 10.0
# Jaeger's v3 query parameters (cmd/query/app/apiv3/http_gateway.go, v1.75.0 = Jaeger 2.12;
# later releases accept these snake_case names as aliases).
_PARAM_SERVICE = "query.service_name"
_PARAM_TIME_MIN = "query.start_time_min"
_PARAM_TIME_MAX = "query.start_time_max"
_PARAM_NUM_TRACES = "query.num_traces"

_HEX = re.compile(r"[0-9a-fA-F]+")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def read_jaeger(
    url: str,
    *,
    trace_id: str | None = None,
    service: str | None = None,
    since: timedelta | datetime | str | None = None,
    limit: int | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    headers: Mapping[str, str] | None = None,
) -> list[PromptRecord]:
    """The recorded pairs of one trace, or of a service's recent traces, from Jaeger.

    Reads Jaeger's query API v3 (``/api/v3/traces``, OTLP JSON), which Jaeger 2.x serves
    on its query port (16686 by default).

    Example:
        >>> records = read_jaeger("http://localhost:16686", service="support-bot", since="1h")  # doctest: +SKIP
        >>> records = read_jaeger("http://localhost:16686", trace_id=records[0].trace_id)  # doctest: +SKIP

    Args:
        url: Jaeger's query base URL, e.g. ``http://localhost:16686``. A user and password
            in it are sent as HTTP basic authentication, and masked in every message.
        trace_id: one trace's id (32 hex digits, as ``record.trace_id`` holds).
        service: instead of ``trace_id``: the ``service.name`` whose traces to read.
        since: with ``service``: how far back traces may start: a ``timedelta``, a
            ``datetime``, or text such as ``"30m"``, ``"1h"``, ``"2d"`` (default one hour).
        limit: with ``service``: at most this many traces (default 20, as Jaeger's UI).
        timeout: seconds to wait for Jaeger's answer.
        headers: extra HTTP headers (e.g. ``{"authorization": "Bearer ..."}``).

    Returns:
        The records, as ``read_otlp_json`` gives them; an empty list when no trace of
        ``service`` started in the window.

    Raises:
        TraceNotFoundError: Jaeger has no trace with ``trace_id``.
        TraceReadError: Jaeger cannot be reached, answers with an error, or answers
            something that is not OTLP JSON.
        TypeError, ValueError: an argument is not of the documented form.
    """
    base, auth = _base_url(url)
    if (trace_id is None) == (service is None):
        raise ValueError(
            f"give exactly one of `trace_id` and `service`, got trace_id={trace_id!r}, service={service!r}"
        )
    if trace_id is not None:
        if not isinstance(trace_id, str) or not 1 <= len(trace_id) <= 32 or not _HEX.fullmatch(trace_id):
            raise ValueError(f"`trace_id` must be up to 32 hex digits, got {trace_id!r}")
        address = f"{base}/api/v3/traces/{trace_id.lower().zfill(32)}"
        what = f"trace {trace_id.lower().zfill(32)}"
    else:
        if not isinstance(service, str) or not service:
            raise ValueError(f"`service` must be a non-empty str, got {service!r}")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise ValueError(f"`limit` must be a whole number of traces, 1 or more, got {limit!r}")
        now = datetime.now(timezone.utc)
        query = {
            _PARAM_SERVICE: service,
            _PARAM_TIME_MIN: _rfc3339(_window_start(since, now)),
            # A minute ahead: a trace whose spans were stamped by a clock a little fast.
            _PARAM_TIME_MAX: _rfc3339(now + timedelta(minutes=1)),
            _PARAM_NUM_TRACES: str(limit or DEFAULT_TRACE_LIMIT),
        }
        address = f"{base}/api/v3/traces?{urllib.parse.urlencode(query)}"
        what = f"traces of service {service!r}"
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
        raise ValueError(f"`timeout` must be a number of seconds above 0, got {timeout!r}")
    request_headers = {"Accept": "application/json", **(headers or {})}
    if auth is not None:
        request_headers["Authorization"] = auth
    body = _get(address, request_headers, timeout, url, what, not_found_is_empty=service is not None)
    if body is None:
        return []
    documents = list(json_documents(body, f"Jaeger's answer from {mask_url(url)}"))
    for document in documents:
        if isinstance(document, Mapping) and "error" in document and "result" not in document:
            raise TraceReadError(
                f"Jaeger at {mask_url(url)} answered an error for {what}: {error_message(document)}"
            )
    return read_otlp_json({"resourceSpans": [rs for doc in documents for rs in _resource_spans(doc, url)]})


def _resource_spans(document: Any, url: str) -> list[Any]:
    if isinstance(document, Mapping):
        inner = document.get("result", document)
        if isinstance(inner, Mapping) and isinstance(inner.get("resourceSpans"), list):
            return list(inner["resourceSpans"])
    raise TraceReadError(f"Jaeger at {mask_url(url)} answered JSON that is not OTLP trace data")


def _base_url(url: object) -> tuple[str, str | None]:
    """``url`` without credentials or a trailing slash, and the basic-auth header they make."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"`url` must be Jaeger's http(s) query URL, got {mask_url(url)!r}")
    parts = urllib.parse.urlsplit(url)
    auth = None
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        token = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}".encode()
        auth = "Basic " + base64.b64encode(token).decode("ascii")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)).rstrip("/"), auth


def _window_start(since: timedelta | datetime | str | None, now: datetime) -> datetime:
    if since is None:
        return now - DEFAULT_SINCE
    if isinstance(since, datetime):
        if since.tzinfo is None:
            raise ValueError(f"`since` must be a timezone-aware datetime, got naive {since!r}")
        return since
    if isinstance(since, timedelta):
        return now - since
    if isinstance(since, str):
        return now - parse_duration(since)
    raise TypeError(f"`since` must be a timedelta, a datetime or text such as '1h', got {since!r}")


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"30m"``, ``"1h"``, ``"2d"`` (or several: ``"1h30m"``) as a timedelta.

    Raises:
        ValueError: ``text`` is not of that form, or is zero.
    """
    compact = text.strip().replace(" ", "")
    matches = list(_DURATION.finditer(compact))
    if not matches or "".join(match.group(0) for match in matches) != compact:
        raise ValueError(f"`since` must be a duration such as '30m', '1h' or '2d', got {text!r}")
    seconds = sum(float(match.group(1)) * _DURATION_UNITS[match.group(2)] for match in matches)
    if seconds <= 0:
        raise ValueError(f"`since` must be more than zero, got {text!r}")
    return timedelta(seconds=seconds)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _get(
    address: str, headers: Mapping[str, str], timeout: float, url: str, what: str, *, not_found_is_empty: bool
) -> str | None:
    masked = mask_url(url)
    request = urllib.request.Request(address, headers=dict(headers), method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return str(answer.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as error:
        detail = _error_detail(error)
        if error.code == 404:
            if not_found_is_empty and detail is not None:
                return None  # Jaeger answers 404 "No traces found" to a search that found none
            if detail is not None:
                raise TraceNotFoundError(f"Jaeger at {masked} has no {what} ({detail})") from None
            raise TraceReadError(
                f"{masked} answered 404 to /api/v3/traces: is it Jaeger 2's query URL (port 16686)?"
            ) from None
        raise TraceReadError(
            f"Jaeger at {masked} answered HTTP {error.code} for {what}: {detail or error.reason}"
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise TraceReadError(f"cannot reach Jaeger at {masked}: {reason}") from None


def _error_detail(error: urllib.error.HTTPError) -> str | None:
    """The message of Jaeger's JSON error body, or None when the body is not one."""
    try:
        body = json.loads(error.read().decode("utf-8", "replace"))
    except (ValueError, OSError):
        return None
    if isinstance(body, Mapping) and "error" in body:
        return error_message(body)
    return None
