"""encode_request: the stock OTLP encoder's bytes, byte for byte, written without protobuf objects.

The stock encoder (``encode_spans(spans).SerializeToString()``) is the oracle. The only
differences allowed are where it would lose data: text that is not UTF-8 is sent with ``?``,
and a span without a span context is skipped instead of failing the batch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from promptrecorder import PromptRecorder, autorecord
from promptrecorder.export.otlp_codec import decode_batch
from promptrecorder.export.otlp_encode import (
    EncodedSpan,
    MalformedRequestError,
    encode_request,
    encode_span,
    request_span_count,
    request_span_ids,
    split_request,
)
from tests.conftest import Tracing

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
UINT32_MAX = (1 << 32) - 1
SCHEMA_URL = "https://opentelemetry.io/schemas/1.30.0"

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _stock(spans: Sequence[ReadableSpan]) -> bytes:
    return encode_spans(spans).SerializeToString()


# --- strategies ----------------------------------------------------------------------------------

# Hypothesis leaves lone surrogates out of text by default: here every text is valid UTF-8.
text = st.text(max_size=12)
# Strings whose encoded size needs a 1-, 2- or 3-byte length varint (128 and 16384 bytes), in
# characters of 1 to 4 UTF-8 bytes.
long_text = st.builds(
    lambda char, count: char * count,
    st.sampled_from(["a", "é", "€", "𝄞"]),
    st.one_of(st.sampled_from([127, 128, 4096, 16383, 16384]), st.integers(0, 17_000)),
)
keys = st.one_of(st.sampled_from(["k", "gen_ai.system", "é", "x" * 130]), st.text(min_size=1, max_size=10))
timestamps = st.one_of(st.sampled_from([0, 1, (1 << 64) - 1]), st.integers(0, (1 << 64) - 1))
counts = st.one_of(st.sampled_from([0, 1, 127, 128, 16384, UINT32_MAX]), st.integers(0, UINT32_MAX))

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, -1, 1, 127, 128, INT64_MIN, INT64_MAX, 1 << 32]),
    st.integers(INT64_MIN, INT64_MAX),
    st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan]),
    st.floats(),  # NaN never equals NaN, but it is bytes that are compared
    st.sampled_from(["", "é", "日本語", "emoji 🎉"]),
    text,
    long_text,
    st.binary(max_size=20),
)
homogeneous = st.one_of(
    st.lists(st.booleans(), max_size=4),
    st.lists(st.integers(INT64_MIN, INT64_MAX), max_size=4),
    st.lists(st.floats(), max_size=4),
    st.lists(text, max_size=4),
    st.lists(st.binary(max_size=4), max_size=4),
).map(tuple)
values = st.recursive(
    st.one_of(leaves, homogeneous),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(tuple),  # mixed sequences, nested ones included
        st.dictionaries(keys, inner, max_size=3),  # mappings: OTLP's kvlist_value
    ),
    max_leaves=6,
)
# Values the wire format cannot carry: both encoders leave the whole attribute out.
unencodable = st.one_of(
    st.sampled_from([1 << 64, INT64_MAX + 1, INT64_MIN - 1]),
    st.builds(object),
    st.tuples(st.integers(0, 3), st.builds(object)),
    st.builds(lambda key: {key: 1 << 70}, keys),
)


def _attributes(lossy: bool) -> st.SearchStrategy[Any]:
    """None, a plain dict (what ReadableSpan accepts), or SDK BoundedAttributes, sometimes dropping."""
    raw = st.dictionaries(keys, st.one_of(values, unencodable) if lossy else values, max_size=4)
    bounded = st.builds(
        lambda attributes, maxlen: BoundedAttributes(maxlen=maxlen, attributes=attributes),
        st.dictionaries(keys, values, max_size=5),
        st.one_of(st.none(), st.integers(0, 3)),
    )
    return st.one_of(st.none(), raw, bounded)


def _bounded_list(items: list[Any], maxlen: int | None) -> Any:
    """A list as the SDK keeps events and links: maxlen past the end counts as dropped."""
    bounded = BoundedList(maxlen)
    bounded.extend(items)
    return bounded


def _sequence(items: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(items, max_size=3),
        st.builds(_bounded_list, st.lists(items, max_size=4), st.one_of(st.none(), st.integers(0, 2))),
    )


trace_states = st.sampled_from(
    [TraceState(), TraceState([("k", "v")]), TraceState([("vendor@tenant", "x1"), ("congo", "t61rcWkgMzE")])]
)
contexts = st.builds(
    SpanContext,
    trace_id=st.one_of(st.just(0), st.integers(0, (1 << 128) - 1)),
    span_id=st.one_of(st.just(0), st.integers(0, (1 << 64) - 1)),
    is_remote=st.booleans(),
    trace_flags=st.sampled_from([TraceFlags(TraceFlags.DEFAULT), TraceFlags(TraceFlags.SAMPLED)]),
    trace_state=trace_states,
)
events = st.builds(Event, name=st.one_of(text, long_text), attributes=_attributes(True), timestamp=timestamps)
links = st.builds(Link, context=contexts, attributes=_attributes(True))
statuses = st.builds(
    Status,
    st.sampled_from(StatusCode),
    # The SDK keeps a description on ERROR only (and logs a warning for the others).
    st.one_of(st.none(), st.just(""), text, long_text),
)


class _SpanWithDrops(ReadableSpan):
    """A ReadableSpan reporting dropped counts as large as OTLP's uint32, for multi-byte varints."""

    def __init__(self, drops: tuple[int, int, int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._drops = drops

    @property
    def dropped_attributes(self) -> int:
        return self._drops[0]

    @property
    def dropped_events(self) -> int:
        return self._drops[1]

    @property
    def dropped_links(self) -> int:
        return self._drops[2]


resource_specs = st.lists(
    st.tuples(
        st.dictionaries(keys, values, max_size=3),
        st.one_of(st.none(), st.just(SCHEMA_URL), text),
    ),
    min_size=1,
    max_size=3,
)


def _scope_specs(name: st.SearchStrategy[str], version: st.SearchStrategy[str | None]) -> Any:
    return st.lists(
        st.tuples(
            name,
            version,
            st.one_of(st.none(), st.just(SCHEMA_URL), text),
            st.one_of(st.none(), st.dictionaries(keys, values, max_size=3)),
        ),
        max_size=3,
    )


@st.composite
def batches(draw: st.DrawFn, round_trippable: bool = False) -> list[ReadableSpan]:
    """Spans over several resources and scopes, interleaved.

    Each resource and scope exists as two distinct but equal objects, so that grouping by
    equality (not identity) is exercised; no scope at all (None) is one of the choices.

    With ``round_trippable``, scopes that OTLP cannot tell apart (no scope and a scope named
    "", a version of None and of "") are not generated: decoding cannot restore them, and
    re-encoding then groups them together.
    """
    resources = [Resource(attributes, url) for attributes, url in draw(resource_specs) for _ in range(2)]
    if round_trippable:
        specs = draw(_scope_specs(text, st.one_of(st.none(), text.map("v{}".format))))
        specs = [(f"{index}{name}", *rest) for index, (name, *rest) in enumerate(specs)]  # never "", unique
    else:
        specs = draw(_scope_specs(text, st.one_of(st.none(), text)))
    scopes = [None, *(InstrumentationScope(*spec) for spec in specs for _ in range(2))]
    spans = []
    for _ in range(draw(st.integers(0, 6))):
        arguments = {
            "name": draw(st.one_of(text, long_text)),
            "context": draw(contexts),
            "parent": draw(st.one_of(st.none(), contexts)),
            "resource": draw(st.sampled_from(resources)),
            "attributes": draw(_attributes(not round_trippable)),
            "events": draw(_sequence(events)),
            "links": draw(_sequence(links)),
            "kind": draw(st.sampled_from(SpanKind)),
            "status": draw(statuses),
            "start_time": draw(st.one_of(st.none(), timestamps)),
            "end_time": draw(st.one_of(st.none(), timestamps)),
            "instrumentation_scope": draw(st.sampled_from(scopes)),
        }
        drops = draw(st.one_of(st.none(), st.tuples(counts, counts, counts)))
        spans.append(ReadableSpan(**arguments) if drops is None else _SpanWithDrops(drops, **arguments))
    return spans


def _span(name: str = "span", **kwargs: Any) -> ReadableSpan:
    kwargs.setdefault("context", SpanContext(0x1234, 0x5678, False))
    kwargs.setdefault("resource", Resource({"service.name": "encode-test"}))
    kwargs.setdefault("instrumentation_scope", InstrumentationScope("test", "1.0"))
    return ReadableSpan(name=name, **kwargs)


def _decoded_attributes(pairs: Sequence[KeyValue]) -> dict[str, Any]:
    return {pair.key: getattr(pair.value, pair.value.WhichOneof("value")) for pair in pairs}


def _only_span(payload: bytes) -> Any:
    request = ExportTraceServiceRequest.FromString(payload)
    [resource_spans] = request.resource_spans
    [scope_spans] = resource_spans.scope_spans
    [span] = scope_spans.spans
    return span


# --- the stock encoder's bytes -------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(spans=batches())
def test_any_batch_encodes_to_the_stock_encoders_bytes(spans: list[ReadableSpan]) -> None:
    """Every value type, kind, status, parent, trace state, drop count, resource and scope: same bytes."""
    assert encode_request(spans) == _stock(spans)


@PROPERTY_SETTINGS
@given(spans=batches(), data=st.data())
def test_spans_encoded_when_they_ended_give_the_same_request(
    spans: list[ReadableSpan], data: st.DataObject
) -> None:
    """A batch mixing spans encoded at their end (EncodedSpan) with plain spans: the same bytes."""
    encoded_at_end = data.draw(st.lists(st.booleans(), min_size=len(spans), max_size=len(spans)))
    mixed = [encode_span(span) if early else span for span, early in zip(spans, encoded_at_end, strict=True)]
    assert all(
        isinstance(item, EncodedSpan) for item, early in zip(mixed, encoded_at_end, strict=True) if early
    )
    assert encode_request(mixed) == _stock(spans)


def test_an_empty_batch_is_an_empty_request() -> None:
    """No spans: the empty request, zero bytes, as the stock encoder writes it."""
    assert encode_request([]) == _stock([]) == b""


def test_equal_resources_and_scopes_are_grouped_in_order_of_first_appearance() -> None:
    """Distinct but equal resources and scopes share one group each, ordered by first appearance."""
    first, first_again = Resource({"r": 1}, SCHEMA_URL), Resource({"r": 1}, SCHEMA_URL)
    second = Resource({"r": 2})
    scope, scope_again = (
        InstrumentationScope("a", "1", SCHEMA_URL, {"x": 1}),
        InstrumentationScope("a", "1", SCHEMA_URL, {"x": 1}),
    )
    other_scope = InstrumentationScope("b")
    spans = [
        _span("1", resource=second, instrumentation_scope=None),
        _span("2", resource=first, instrumentation_scope=scope),
        _span("3", resource=second, instrumentation_scope=other_scope),
        _span("4", resource=first_again, instrumentation_scope=scope_again),
        _span("5", resource=first_again, instrumentation_scope=None),
        _span("6", resource=second, instrumentation_scope=None),
    ]
    payload = encode_request(spans)
    assert payload == _stock(spans)
    request = ExportTraceServiceRequest.FromString(payload)
    grouped = [[[span.name for span in ss.spans] for ss in rs.scope_spans] for rs in request.resource_spans]
    assert grouped == [[["1", "6"], ["3"]], [["2", "4"], ["5"]]]


@pytest.mark.parametrize(
    "drops",
    [
        pytest.param(
            {"attributes": BoundedAttributes(maxlen=2, attributes={f"k{n}": n for n in range(5)})},
            id="attributes",
        ),
        pytest.param({"events": _bounded_list([Event("e", None, n) for n in range(4)], 1)}, id="events"),
        pytest.param(
            {"links": _bounded_list([Link(SpanContext(1, n + 1, False)) for n in range(300)], 2)}, id="links"
        ),
        pytest.param(
            {"events": [Event("e", BoundedAttributes(maxlen=1, attributes={"a": 1, "b": 2}), 5)]},
            id="event-attributes",
        ),
        pytest.param(
            {"links": [Link(SpanContext(1, 2, True), BoundedAttributes(maxlen=0, attributes={"a": 1}))]},
            id="link-attributes",
        ),
    ],
)
def test_counts_of_what_the_sdk_dropped_are_sent_as_the_stock_encoder_sends_them(
    drops: dict[str, Any],
) -> None:
    """Dropped attributes, events, links, event and link attributes, from SDK containers: same bytes."""
    span = _span(**drops)
    assert (
        span.dropped_attributes
        or span.dropped_events
        or span.dropped_links
        or any(item.dropped_attributes for item in (*span.events, *span.links))
    )
    assert encode_request([span]) == _stock([span])


# --- where the stock encoder would lose data -----------------------------------------------------


def test_a_lone_surrogate_in_an_attribute_value_is_sent_as_a_question_mark() -> None:
    """An attribute value that is not UTF-8 is kept, its bad characters replaced, the rest intact."""
    span = _span(attributes={"prompt": "a\ud800b", "nested": ("x\udfff", {"k": "\ud83d"}), "other": "ok"})
    sent = _only_span(encode_request([span]))
    attributes = {pair.key: pair.value for pair in sent.attributes}
    assert attributes["prompt"].string_value == "a?b"
    in_sequence, mapping = attributes["nested"].array_value.values
    assert in_sequence.string_value == "x?"
    assert _decoded_attributes(mapping.kvlist_value.values) == {"k": "?"}
    assert attributes["other"].string_value == "ok"


def test_lone_surrogates_in_names_and_descriptions_are_sent_as_question_marks() -> None:
    """Span, event and scope names, keys, status, schema URLs: not UTF-8 is sent with "?", not failed."""
    span = _span(
        "span\ud800",
        attributes={"key\udc00": "v"},
        events=[Event("event\ud800", {"k": 1}, 7)],
        status=Status(StatusCode.ERROR, "bad\ud800"),
        resource=Resource({"service.name": "svc"}, "https://resource\ud800"),
        instrumentation_scope=InstrumentationScope(
            "scope\ud800", "1\ud800", "https://scope\ud800", {"s\ud800": 1}
        ),
    )
    request = ExportTraceServiceRequest.FromString(encode_request([span]))
    [resource_spans] = request.resource_spans
    [scope_spans] = resource_spans.scope_spans
    [sent] = scope_spans.spans
    assert sent.name == "span?"
    assert _decoded_attributes(sent.attributes) == {"key?": "v"}
    assert [event.name for event in sent.events] == ["event?"]
    assert sent.status.message == "bad?"
    assert resource_spans.schema_url == "https://resource?"
    assert (scope_spans.scope.name, scope_spans.scope.version, scope_spans.schema_url) == (
        "scope?",
        "1?",
        "https://scope?",
    )
    assert _decoded_attributes(scope_spans.scope.attributes) == {"s?": 1}


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(1 << 64, id="int-2**64"),
        pytest.param(INT64_MAX + 1, id="int-2**63"),
        pytest.param(INT64_MIN - 1, id="int-below-int64"),
        pytest.param(object(), id="object"),
        pytest.param((1, object()), id="sequence-holding-an-object"),
        pytest.param({"inner": 1 << 64}, id="mapping-holding-a-big-int"),
    ],
)
def test_an_attribute_the_wire_cannot_carry_is_left_out_with_one_warning(
    value: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The attribute is left out as the stock encoder leaves it out; the others stay; one warning per key."""
    spans = [_span(str(n), attributes={"before": 1, "unsendable": value, "after": "x"}) for n in range(3)]
    with caplog.at_level(logging.WARNING, logger="promptrecorder"):
        payload = encode_request(spans)
        assert encode_request(spans) == payload
    request = ExportTraceServiceRequest.FromString(payload)
    for sent in request.resource_spans[0].scope_spans[0].spans:
        assert _decoded_attributes(sent.attributes) == {"before": 1, "after": "x"}
    warnings = [record for record in caplog.records if record.name.startswith("promptrecorder")]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "'unsendable'" in warnings[0].getMessage()
    with caplog.at_level(logging.CRITICAL):  # the stock encoder logs a traceback per attribute
        assert payload == _stock(spans)


def test_a_span_without_a_span_context_is_skipped_and_the_rest_of_the_batch_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A span with no context is not sent (with a warning); the spans around it are, unchanged."""
    kept = [_span("before"), _span("after", context=SpanContext(0x99, 0x98, True))]
    with caplog.at_level(logging.WARNING, logger="promptrecorder"):
        payload = encode_request([kept[0], _span("ghost", context=None), kept[1]])
    assert payload == encode_request(kept) == _stock(kept)
    assert [record.getMessage() for record in caplog.records if record.name.startswith("promptrecorder")] == [
        "promptrecorder: a span without a span context was not exported"
    ]


# --- real spans from a real TracerProvider -------------------------------------------------------


def _recorded_spans(tracing: Tracing) -> list[ReadableSpan]:
    """A recorder session with two calls, then a span that records an exception, with a linked child."""
    with PromptRecorder("session", tracer_provider=tracing.provider, attributes={"tags": ["a", "b"]}):
        autorecord("What is 2 + 2?", "4", model="gpt-test", input_tokens=7, output_tokens=1)
        autorecord("Ünïcödé prompt 🎉", "", model="gpt-test", input_tokens=0, output_tokens=0)
    tracer = tracing.provider.get_tracer("encode-test", "1.2.3", schema_url=SCHEMA_URL)
    with tracer.start_as_current_span(
        "failing", kind=SpanKind.SERVER, record_exception=False, set_status_on_exception=False
    ) as span:
        with tracer.start_as_current_span("child", links=[Link(span.get_span_context(), {"why": "because"})]):
            pass
        try:
            raise ValueError("boom")
        except ValueError as error:
            span.record_exception(error, {"extra": 1.5})
            span.set_status(Status(StatusCode.ERROR, "boom"))
    return tracing.spans()


def test_spans_from_a_recorder_and_a_recorded_exception_encode_as_the_stock_encoder_does(
    tracing: Tracing,
) -> None:
    """Real SDK spans (recorder session, calls, an exception event, a link): same bytes."""
    spans = _recorded_spans(tracing)
    assert any(event.name == "exception" for span in spans for event in span.events)
    assert any(span.links for span in spans)
    assert len({span.instrumentation_scope for span in spans}) >= 2
    assert encode_request(spans) == _stock(spans)
    for span in spans:  # and one by one, each in a request of its own
        assert encode_request([span]) == _stock([span])


def test_text_and_int_attributes_of_every_length_class_encode_as_the_stock_encoder_does() -> None:
    """Known keys take the one-join path: lengths around the one-byte and two-byte varint
    limits, keys short and long, ints at the int64 edges, bools apart; twice, the second time
    with every key cached."""
    attributes: dict[str, Any] = {}
    for key_length in (1, 40, 119, 130):
        for size in (
            0,
            1,
            80,
            118,
            119,
            120,
            121,
            122,
            123,
            124,
            125,
            126,
            127,
            128,
            16_380,
            16_383,
            16_384,
            16_400,
        ):
            attributes[f"{'k' * key_length}.{size}"] = "é" * (size // 2) + "x" * (size % 2)
        for number in (0, 1, 127, 128, -1, INT64_MIN, INT64_MAX):
            attributes[f"{'n' * key_length}.{number}"] = number
        attributes[f"{'b' * key_length}"] = True
    spans = [_span(attributes=attributes)]
    assert encode_request(spans) == _stock(spans)
    assert encode_request(spans) == _stock(spans)


# --- decoding and encoding again -----------------------------------------------------------------


def test_real_spans_decode_and_encode_back_to_the_same_bytes(tracing: Tracing) -> None:
    """decode_batch of the bytes gives spans that encode_request turns back into the same bytes."""
    payload = encode_request(_recorded_spans(tracing))
    decoded = decode_batch(payload)
    assert encode_request(decoded) == payload == _stock(decoded)


@settings(PROPERTY_SETTINGS, max_examples=100)
@given(spans=batches(round_trippable=True))
def test_any_batch_decodes_and_encodes_back_to_the_same_bytes(spans: list[ReadableSpan]) -> None:
    """encode_request(decode_batch(payload)) == payload, for batches OTLP can tell apart."""
    payload = encode_request(spans)
    decoded = decode_batch(payload)
    assert encode_request(decoded) == payload == _stock(decoded)


# --- found differences from the stock encoder, outside the documented ones ------------------------
# Each input below bypasses the SDK's own cleaning (a plain dict handed to ReadableSpan, or a
# status of None); spans from an SDK tracer cannot carry them.


@pytest.mark.parametrize(
    "attributes", [pytest.param({"": 1}, id="top-level"), pytest.param({"a": {"": 1}}, id="in-a-mapping")]
)
def test_an_empty_attribute_key_encodes_as_the_stock_encoder_does(attributes: dict[str, Any]) -> None:
    """KeyValue.key "" is proto3's default: the stock encoder leaves the field out, so must we."""
    span = _span(attributes=attributes)
    assert encode_request([span]) == _stock([span])


def test_a_span_with_no_status_encodes_as_the_stock_encoder_does() -> None:
    """ReadableSpan(status=None): the stock encoder sends no Status field."""
    span = _span(status=None)
    assert encode_request([span]) == _stock([span])


def test_a_non_string_attribute_key_encodes_as_the_stock_encoder_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """{1: "x"}: the stock encoder cannot set KeyValue.key to an int and leaves the attribute out."""
    span = _span(attributes={1: "x", "ok": "y"})
    with caplog.at_level(logging.CRITICAL):
        assert encode_request([span]) == _stock([span])


# --- splitting a refused request ------------------------------------------------------------------


def _flat(payload: bytes) -> list[tuple[bytes, str, bytes, str, bytes]]:
    """Each span of a request with its resource and scope, as protobuf reads them."""
    request = ExportTraceServiceRequest.FromString(payload)
    return [
        (
            rs.resource.SerializeToString(),
            rs.schema_url,
            ss.scope.SerializeToString(),
            ss.schema_url,
            span.SerializeToString(),
        )
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]


@PROPERTY_SETTINGS
@given(spans=batches())
def test_a_request_splits_into_two_complete_requests_of_half_its_spans_each(
    spans: list[ReadableSpan],
) -> None:
    """Each half is a whole request whose spans keep their resource and scope; in order, they are the
    original's spans; the counts add up; a request of one span comes back whole."""
    payload = encode_request(spans)
    halves = split_request(payload)
    flat = _flat(payload)
    assert request_span_count(payload) == len(flat)
    if len(flat) < 2:
        assert halves == [(payload, len(flat))]
        return
    (first, first_count), (second, second_count) = halves
    assert (first_count, second_count) == (len(flat) // 2, len(flat) - len(flat) // 2)
    assert _flat(first) + _flat(second) == flat
    assert _flat(first + second) == flat  # concatenated requests are one request (repeated field)
    expected_ids = [(span.context.trace_id, span.context.span_id) for span in _sorted_as_encoded(spans)]
    assert request_span_ids(payload) == expected_ids


def _sorted_as_encoded(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    """The spans in the order encode_request writes them: grouped by resource, then scope."""
    groups: dict[Any, dict[Any, list[ReadableSpan]]] = {}
    for span in spans:
        groups.setdefault(span.resource, {}).setdefault(span.instrumentation_scope, []).append(span)
    return [span for scopes in groups.values() for group in scopes.values() for span in group]


@pytest.mark.parametrize("payload", [b"\xff\xff\xff not protobuf", b"\x0a\x05abc", b"\x0b"])
def test_bytes_that_are_not_a_request_are_refused_plainly(payload: bytes) -> None:
    """Not a request (bad varint, a field past the end, an unknown wire type): MalformedRequestError."""
    with pytest.raises(MalformedRequestError, match="not an OTLP trace request"):
        split_request(payload)
