"""OTLP trace request bytes straight from SDK spans, without building protobuf objects.

The stock exporters encode a batch by building one protobuf object per span, event,
attribute and value, then serialising them: ~40 µs per span of ours, the largest single
cost a recorded span puts on the producing process (docs/benchmarks.md). This module
writes the same ``ExportTraceServiceRequest`` wire bytes directly, in ~15 µs per span.

It is held to the stock encoder byte for byte (tests/unit/export/test_otlp_encode.py): same
grouping by resource and scope, in order of first appearance; same fields, in field
order, with proto3's defaults left out. It differs only where the stock encoder would
lose data:

* text that is not valid UTF-8 (lone surrogates) is sent with ``?`` in place of the bad
  characters, where the stock encoder drops the attribute, or fails the whole batch when
  the bad text is a span or event name;
* an attribute the wire format cannot carry (an int beyond 64 bits, a value of an
  unsupported type) is left out, as the stock encoder does; the first of each kind is
  logged, once per process, where the stock encoder logs a traceback every time.

A span can also be encoded when it ends (``encode_span``, used by ``DeliveryProcessor``)
and wait for export as its bytes; ``encode_request`` then only frames them.

Protobuf wire format, for reading the tags below: a tag byte is ``field << 3 | wire type``;
wire type 0 is a varint, 1 is 8 fixed bytes, 2 is a length-prefixed body, 5 is 4 fixed bytes.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext

from promptrecorder._diagnostics import warn_once
from promptrecorder.errors import MalformedRequestError

logger = logging.getLogger(__name__)

_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack

_ONE_BYTE = [bytes((n,)) for n in range(0x80)]  # the varints below 128: most lengths
_INT64_MIN, _INT64_LIMIT = -(1 << 63), 1 << 63

# Span flags (OTLP SpanFlags): the parent's is-remote bit is known; and set.
_FLAGS_HAS_IS_REMOTE = 0x100
_FLAGS_IS_REMOTE = 0x200

# Encoded ``KeyValue.key`` fields by attribute key: the same few dozen keys recur in every
# span. Bounded, so that a service inventing keys per request cannot grow it without end.
_KEY_CACHE_LIMIT = 4096
_encoded_keys: dict[str, bytes] = {}


class EncodedSpan:
    """A span encoded when it ended, as it waits in the export queue.

    A queued ``ReadableSpan`` is a graph of dozens of objects that the cyclic garbage
    collector walks, again and again, for as long as it waits; its bytes are one object it
    never looks at. It keeps what the queue and the delivery ledger read (``context``) and
    what ``encode_request`` groups by (``resource``, ``instrumentation_scope``).
    """

    __slots__ = ("context", "instrumentation_scope", "payload", "resource")

    def __init__(self, span: ReadableSpan, context: SpanContext) -> None:
        self.context = context
        self.resource = span.resource
        self.instrumentation_scope = span.instrumentation_scope
        self.payload = _span(span, context)


def encode_span(span: ReadableSpan) -> ReadableSpan | EncodedSpan:
    """``span`` encoded for ``encode_request``, or ``span`` itself when it cannot be."""
    context = span.get_span_context()
    if context is None:
        return span  # encode_request says what it does with it
    try:
        return EncodedSpan(span, context)
    except Exception as error:  # a bug of ours: the span is encoded again at export, and fails there
        warn_once(
            logger, "otlp-encode:at-end", "promptrecorder: could not encode a span as it ended: %r", error
        )
        return span


def encode_request(spans: Sequence[ReadableSpan | EncodedSpan]) -> bytes:
    """The OTLP ``ExportTraceServiceRequest`` bytes for ``spans``.

    Equal to ``encode_spans(spans).SerializeToString()`` of the stock encoder
    (``opentelemetry.exporter.otlp.proto.common.trace_encoder``) except for the losses
    the module docstring lists. Spans encoded when they ended (``EncodedSpan``) are used
    as they are.
    """
    # Resource -> scope -> encoded spans, by equality as the stock encoder groups them;
    # a span finds its list by the identity of its resource and scope, so that resources
    # (whose hash serialises their attributes to JSON) are hashed once per batch, not per span.
    groups: dict[Any, dict[Any, list[bytes]]] = {}
    by_identity: dict[tuple[int, int], list[bytes]] = {}
    for span in spans:
        if isinstance(span, EncodedSpan):
            payload = span.payload
        else:
            context = span.get_span_context()
            if context is None:  # not made by an SDK tracer: nothing to identify it by
                warn_once(
                    logger,
                    "otlp-encode:no-context",
                    "promptrecorder: a span without a span context was not exported",
                )
                continue
            payload = _span(span, context)
        resource, scope = span.resource, span.instrumentation_scope
        encoded = by_identity.get((id(resource), id(scope)))
        if encoded is None:
            encoded = groups.setdefault(resource, {}).setdefault(scope, [])
            by_identity[id(resource), id(scope)] = encoded
        encoded.append(_field(b"\x12", payload))  # ScopeSpans.spans

    request = []
    for resource, scopes in groups.items():
        # ResourceSpans: resource (always present), scope_spans, schema_url.
        parts = [_field(b"\x0a", b"".join(_attributes(b"\x0a", resource.attributes)))]
        for scope, encoded in scopes.items():
            scope_spans = [_field(b"\x0a", _scope(scope)), *encoded]
            if scope is not None and scope.schema_url:
                scope_spans.append(_field(b"\x1a", _text(scope.schema_url)))
            parts.append(_field(b"\x12", b"".join(scope_spans)))
        if resource.schema_url:
            parts.append(_field(b"\x1a", _text(resource.schema_url)))
        request.append(_field(b"\x0a", b"".join(parts)))  # ExportTraceServiceRequest.resource_spans
    return b"".join(request)


def _scope(scope: Any) -> bytes:
    """An ``InstrumentationScope``: name, version, attributes (empty for no scope)."""
    if scope is None:
        return b""
    parts = []
    if scope.name:
        parts.append(_field(b"\x0a", _text(scope.name)))
    if scope.version:
        parts.append(_field(b"\x12", _text(scope.version)))
    parts.extend(_attributes(b"\x1a", scope.attributes))
    return b"".join(parts)


def _span(span: ReadableSpan, context: SpanContext) -> bytes:
    """A ``Span`` message body, fields in field-number order."""
    parts = [
        b"\x0a\x10",  # trace_id, 16 bytes
        context.trace_id.to_bytes(16, "big"),
        b"\x12\x08",  # span_id, 8 bytes
        context.span_id.to_bytes(8, "big"),
    ]
    trace_state = context.trace_state
    if trace_state:
        header = ",".join([f"{key}={value}" for key, value in trace_state.items()])
        parts.append(_field(b"\x1a", _text(header)))
    parent = span.parent
    if parent:
        parts.append(b"\x22\x08")  # parent_span_id, 8 bytes
        parts.append(parent.span_id.to_bytes(8, "big"))
    if span.name:
        parts.append(_field(b"\x2a", _text(span.name)))
    # SpanKind: the API's enum counts from INTERNAL = 0, OTLP's from UNSPECIFIED = 0.
    parts.append(b"\x30" + _ONE_BYTE[span.kind.value + 1])
    if span.start_time:
        parts.append(b"\x39" + _pack_fixed64(span.start_time))
    if span.end_time:
        parts.append(b"\x41" + _pack_fixed64(span.end_time))
    parts.extend(_attributes(b"\x4a", span.attributes))
    if span.dropped_attributes:
        parts.append(b"\x50" + _varint(span.dropped_attributes))
    for event in span.events:
        pieces = _event(event)  # framed here, joined once with the span: the text copied once
        parts.append(b"\x5a" + _varint(sum(map(len, pieces))))
        parts += pieces
    if span.dropped_events:
        parts.append(b"\x60" + _varint(span.dropped_events))
    for link in span.links:
        parts.append(_field(b"\x6a", _link(link)))
    if span.dropped_links:
        parts.append(b"\x70" + _varint(span.dropped_links))
    if span.status is not None:  # present even when unset, as the stock encoder sends it
        parts.append(_field(b"\x7a", _status(span.status)))
    remote = parent is not None and parent.is_remote
    parts.append(b"\x85\x01" + _pack_fixed32(_FLAGS_HAS_IS_REMOTE | (_FLAGS_IS_REMOTE if remote else 0)))
    return b"".join(parts)


def _event(event: Any) -> list[bytes]:
    """A ``Span.Event`` body as pieces: time_unix_nano, name, attributes, dropped_attributes_count."""
    parts = []
    if event.timestamp:
        parts.append(b"\x09" + _pack_fixed64(event.timestamp))
    if event.name:
        parts.append(_field(b"\x12", _text(event.name)))
    parts.extend(_attributes(b"\x1a", event.attributes))
    if event.dropped_attributes:
        parts.append(b"\x20" + _varint(event.dropped_attributes))
    return parts


def _link(link: Any) -> bytes:
    """A ``Span.Link``: trace_id, span_id, attributes, dropped_attributes_count, flags.

    Like the stock encoder, the link's trace state is not sent.
    """
    context = link.context
    parts = [
        b"\x0a\x10",
        context.trace_id.to_bytes(16, "big"),
        b"\x12\x08",
        context.span_id.to_bytes(8, "big"),
        *_attributes(b"\x22", link.attributes),
    ]
    if link.dropped_attributes:
        parts.append(b"\x28" + _varint(link.dropped_attributes))
    flags = _FLAGS_HAS_IS_REMOTE | (_FLAGS_IS_REMOTE if context.is_remote else 0)
    parts.append(b"\x35" + _pack_fixed32(flags))
    return b"".join(parts)


def _status(status: Any) -> bytes:
    """A ``Status``: message, code (field 1 is reserved)."""
    body = b""
    if status.description:
        body += _field(b"\x12", _text(status.description))
    code = status.status_code.value
    if code:
        body += b"\x18" + _ONE_BYTE[code]
    return body


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> list[bytes]:
    """One ``KeyValue`` field per attribute, each under ``tag``, as pieces to be joined."""
    if not attributes:
        return []
    pieces: list[bytes] = []
    for key, value in attributes.items():
        prefix = _encoded_keys.get(key)
        if prefix is not None and type(value) is str:
            # Nearly every attribute: a known key and a str. Its KeyValue goes out as pieces
            # sized from the text's length, joined once with the rest of the message: one
            # copy of the text, where nesting field by field made four.
            try:
                text = value.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates: keep the rest of the text
                text = value.encode("utf-8", "replace")
            size = len(text)
            if size < 124 - len(prefix):  # the three lengths below 128: one byte each
                pieces += (
                    tag,
                    _ONE_BYTE[len(prefix) + size + 4],
                    prefix,
                    b"\x12",
                    _ONE_BYTE[size + 2],
                    b"\x0a",
                    _ONE_BYTE[size],
                    text,
                )
            else:
                text_size = _varint(size)
                value_size = _varint(1 + len(text_size) + size)
                key_value_size = len(prefix) + 2 + len(value_size) + len(text_size) + size
                pieces += (
                    tag,
                    _varint(key_value_size),
                    prefix,
                    b"\x12",
                    value_size,
                    b"\x0a",
                    text_size,
                    text,
                )
            continue
        if prefix is not None and type(value) is int and _INT64_MIN <= value < _INT64_LIMIT:
            number = _varint(value & 0xFFFF_FFFF_FFFF_FFFF)  # negative: two's complement
            pieces += (
                tag,
                _varint(len(prefix) + 3 + len(number)),
                prefix,
                b"\x12",
                _ONE_BYTE[1 + len(number)],
                b"\x18",
                number,
            )
            continue
        try:
            if prefix is None:  # not cached, or not a str
                prefix = _key(key)
            any_value = _field(b"\x0a", _text(value)) if type(value) is str else _any_value(value)
        except Exception as error:  # as the stock encoder: lose the attribute, not the batch
            warn_once(
                logger,
                f"otlp-encode:{type(error).__name__}",  # not per key: keys may be made up per request
                "promptrecorder: attribute %r was left out of the OTLP export: %s",
                key,
                error,
            )
            continue
        pieces.append(_field(tag, prefix + _field(b"\x12", any_value)))
    return pieces


def _key(key: str) -> bytes:
    """The encoded ``KeyValue.key`` field for ``key``, cached while the cache has room.

    As in the stock encoder, a key that is not a str is an error at the top level (the
    attribute is left out), and nested mappings pass their keys through ``str`` first.
    """
    if not isinstance(key, str):
        raise TypeError(f"an attribute key must be a str, got {type(key).__name__}")
    encoded = _field(b"\x0a", _text(key)) if key else b""  # "" is proto3's default: left out
    if len(_encoded_keys) < _KEY_CACHE_LIMIT:
        _encoded_keys[key] = encoded
    return encoded


def _any_value(value: Any) -> bytes:
    """An ``AnyValue`` body; the order of the checks is the stock encoder's (bool before int)."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(b"\x0a", _text(value))
    if isinstance(value, int):
        if not _INT64_MIN <= value < _INT64_LIMIT:
            raise ValueError(f"{value} does not fit in a 64-bit integer")
        return b"\x18" + _varint(value & 0xFFFF_FFFF_FFFF_FFFF)  # negative: two's complement
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join([_field(b"\x0a", _any_value(item)) for item in value]))
    if isinstance(value, Mapping):
        pairs = [
            _field(b"\x0a", _key(str(key)) + _field(b"\x12", _any_value(item))) for key, item in value.items()
        ]
        return _field(b"\x32", b"".join(pairs))
    raise TypeError(f"a {type(value).__name__} is not an OTLP attribute value")


def _text(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: keep the rest of the text
        return text.encode("utf-8", "replace")


def _field(tag: bytes, body: bytes) -> bytes:
    """A length-delimited field: tag, length, body."""
    size = len(body)
    if size < 0x80:
        return tag + _ONE_BYTE[size] + body
    if size < 0x4000:
        return tag + bytes((size & 0x7F | 0x80, size >> 7)) + body
    return tag + _varint(size) + body


def _varint(number: int) -> bytes:
    if number < 0x80:
        return _ONE_BYTE[number]
    if number < 0x4000:  # the lengths of most texts
        return bytes((number & 0x7F | 0x80, number >> 7))
    out = bytearray()
    while number >= 0x80:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


# --- reading requests back: splitting a refused request, naming its spans -------------------


def split_request(body: bytes) -> list[tuple[bytes, int]]:
    """``body`` as two requests of half its spans each (in order), with their span counts.

    A request of one span (or none) comes back whole. Resource and scope fields travel
    with the spans of their group, so each half is a complete request. Works on the wire
    bytes: no protobuf objects, no decoding of the spans themselves.

    Raises:
        MalformedRequestError: ``body`` is not a well-formed request.
    """
    groups, spans = _request_spans(body)
    if len(spans) < 2:
        return [(body, len(spans))]
    middle = len(spans) // 2
    return [
        (_build_request(groups, spans[:middle]), middle),
        (_build_request(groups, spans[middle:]), len(spans) - middle),
    ]


def request_span_count(body: bytes) -> int:
    """How many spans ``body`` (an ``ExportTraceServiceRequest``) carries."""
    return len(_request_spans(body)[1])


def request_span_ids(body: bytes) -> list[tuple[int, int]]:
    """(trace id, span id) of each span in ``body``, in order."""
    ids = []
    for _, _, payload in _request_spans(body)[1]:
        trace_id = span_id = 0
        for number, wire, _, start, end in _fields(payload):
            if wire == 2 and number == 1:
                trace_id = int.from_bytes(payload[start:end], "big")
            elif wire == 2 and number == 2:
                span_id = int.from_bytes(payload[start:end], "big")
        ids.append((trace_id, span_id))
    return ids


# A group is (ResourceSpans fields other than its scope_spans, [ScopeSpans fields other than spans]).
_Groups = list[tuple[bytes, list[bytes]]]
_FlatSpan = tuple[int, int, bytes]  # (resource index, scope index, Span body)


def _request_spans(body: bytes) -> tuple[_Groups, list[_FlatSpan]]:
    groups: _Groups = []
    spans: list[_FlatSpan] = []
    try:
        for number, wire, _, start, end in _fields(body):
            if number != 1 or wire != 2:  # ExportTraceServiceRequest has resource_spans only
                continue
            resource_spans = body[start:end]
            resource_rest: list[bytes] = []
            scopes: list[bytes] = []
            for r_number, r_wire, r_tag, r_start, r_end in _fields(resource_spans):
                if r_number != 2 or r_wire != 2:
                    resource_rest.append(resource_spans[r_tag:r_end])
                    continue
                scope_spans = resource_spans[r_start:r_end]
                scope_rest = []
                for s_number, s_wire, s_tag, s_start, s_end in _fields(scope_spans):
                    if s_number == 2 and s_wire == 2:
                        spans.append((len(groups), len(scopes), scope_spans[s_start:s_end]))
                    else:
                        scope_rest.append(scope_spans[s_tag:s_end])
                scopes.append(b"".join(scope_rest))
            groups.append((b"".join(resource_rest), scopes))
    except (IndexError, ValueError) as error:
        raise MalformedRequestError(f"it is not an OTLP trace request: {error}") from None
    return groups, spans


def _build_request(groups: _Groups, spans: Sequence[_FlatSpan]) -> bytes:
    request: list[bytes] = []
    index = 0
    while index < len(spans):
        resource_index = spans[index][0]
        resource_rest, scopes = groups[resource_index]
        parts = [resource_rest]
        while index < len(spans) and spans[index][0] == resource_index:
            scope_index = spans[index][1]
            scope_parts = [scopes[scope_index]]
            while index < len(spans) and spans[index][:2] == (resource_index, scope_index):
                scope_parts.append(_field(b"\x12", spans[index][2]))
                index += 1
            parts.append(_field(b"\x12", b"".join(scope_parts)))
        request.append(_field(b"\x0a", b"".join(parts)))
    return b"".join(request)


def _fields(data: bytes) -> Iterator[tuple[int, int, int, int, int]]:
    """Each field of a message: (number, wire type, tag offset, value offset, end offset)."""
    position, size = 0, len(data)
    while position < size:
        tag_at = position
        key, position = _read_varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            start = position
            _, position = _read_varint(data, position)
        elif wire == 2:
            length, start = _read_varint(data, position)
            position = start + length
        elif wire in (1, 5):
            start = position
            position += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported wire type {wire} at byte {tag_at}")
        if position > size:
            raise ValueError(f"a field at byte {tag_at} runs past the end")
        yield number, wire, tag_at, start, position


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise ValueError("a varint longer than 10 bytes")
