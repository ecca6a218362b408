"""A plain pair's call span: what makes an ``autorecord`` pair an LLM call in GenAI views.

GenAI views (Jaeger's GenAI tab, Phoenix, MLflow, trace-view) read the attributes of one
span per inference call and never the recorder span's events, so a pair recorded with
``autorecord`` gets a span ``chat <model>`` of its own, a child of the span carrying its
events, from its start to its end. A pair from an LLM call (the bots,
``instrument_openai``) already has its CLIENT span and gets no second one: one span per
call, so no view counts a call twice.

The span's attributes are taken from the pair's two events (already bounded, scrubbed and
cut), so they cost no second pass over the content: every ``gen_ai.*`` key (models,
provider, finish reasons, conversation id, messages) and its truncation facts, the usage
under ``gen_ai.usage.*`` (the events carry it under ``promptrecorder.usage.*``), and the
record id that ties the span to its events and record.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.trace import Span, SpanKind
from opentelemetry.util.types import AttributeValue

from promptrecorder.recording import semconv
from promptrecorder.recording.activation import Activation
from promptrecorder.recording.events import name_text

_GEN_AI = "gen_ai."
_OUR_GEN_AI = semconv.INSTRUMENTATION_NAME + "." + _GEN_AI  # truncation facts of gen_ai.* texts
_CONTENT = frozenset({semconv.GEN_AI_INPUT_MESSAGES, semconv.GEN_AI_OUTPUT_MESSAGES})
_USAGE = {
    semconv.USAGE_INPUT_TOKENS: semconv.GEN_AI_USAGE_INPUT_TOKENS,
    semconv.USAGE_OUTPUT_TOKENS: semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
}


def call_attributes(
    prompt_attributes: Mapping[str, AttributeValue],
    response_attributes: Mapping[str, AttributeValue],
    keeps_text: bool,
) -> dict[str, AttributeValue]:
    """The inference span's attributes for a pair whose events have these attributes.

    Without content (``keeps_text`` False: capture ``metadata``) no messages, as the events
    carry none of the pair's text either.
    """
    attributes: dict[str, AttributeValue] = {semconv.GEN_AI_OPERATION_NAME: semconv.OPERATION_CHAT}
    for event in (prompt_attributes, response_attributes):
        for key, value in event.items():
            if key.startswith(_GEN_AI):
                if keeps_text or key not in _CONTENT:
                    attributes[key] = value
            elif key.startswith(_OUR_GEN_AI):
                attributes[key] = value
            elif key in _USAGE:
                attributes[_USAGE[key]] = value
    record_id = prompt_attributes.get(semconv.RECORD_ID)
    if record_id is not None:
        attributes[semconv.RECORD_ID] = record_id
    return attributes


def add_call_span(
    activation: Activation,
    parent: Span,
    attributes: dict[str, AttributeValue],
    model: str | None,
    started_ns: int,
    ended_ns: int,
    response_text: AttributeValue | None = None,
) -> Span:
    """Start and end the call span of a plain pair under ``parent`` (raises what the tracer raises).

    ``response_text``, the response as its event carries it (already cut), also goes on the
    span as OpenInference's ``output.value``: Phoenix drops GenAI output messages that have
    no ``finish_reason``, and a plain pair has none (inventing one would be wrong; the
    conventions deprecate the field). Not in ``attributes``, which the log record shares.
    """
    name = name_text(f"{semconv.OPERATION_CHAT} {model}" if model else semconv.OPERATION_CHAT)
    if response_text is not None:
        attributes = {**attributes, semconv.OPENINFERENCE_OUTPUT_VALUE: response_text}
    span = activation.spans.start(name, None, attributes, SpanKind.CLIENT, parent, started_ns)
    span.end(ended_ns)
    return span
