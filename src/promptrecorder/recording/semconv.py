"""Every span name part, event name and attribute key that promptrecorder emits.

The ``gen_ai.*`` strings follow open-telemetry/semantic-conventions-genai ``main``
(unreleased, schema ``gen-ai-dev``, every name at Development stability), as of:

- ``docs/gen-ai/client-inference.md`` @ 024a4f944a1291fcb627c9c47da69e79868dd15e (the
  inference span, its metrics, the ``gen_ai.client.inference.operation.details`` event);
- ``docs/gen-ai/gen-ai-token-metrics.md`` @ 066d4a7f356f8600de6f10c42874626ab88692fb;
- ``docs/gen-ai/non-normative/migration.md`` @ 32c328e85013588c6fe32ebc30934ab5b1752b6a
  (#374 token metrics, #440 ``cache_write``, #521 inference duration);
- ``model/gen-ai/gen-ai-output-messages.json`` @ ae14c021c2b2c16409f2d3e19025e4dc836d1eda;
- ``docs/gen-ai/gen-ai-agent-spans.md`` @ e8fc5751506258db1459d1bde47994e01dee922e and
  PR #410 (``gen_ai.conversation.id`` on ``invoke_workflow``).

The repository has no release tag yet; when one exists, name it here. The names are
defined here rather than imported from ``opentelemetry-semantic-conventions``, whose
``gen_ai`` constants are deprecated and behind these. Names that changed since the
2026-11 reading (old → new) are listed in the README, "What is recorded"; no switch
brings the old ones back.
"""

from __future__ import annotations

from typing import Final

# --- GenAI conventions -------------------------------------------------------------

GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_WORKFLOW_NAME: Final = "gen_ai.workflow.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"  # was cache_creation
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
GEN_AI_REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_TOKEN_MODALITY: Final = "gen_ai.token.modality"  # on the usage counters only
TOKEN_MODALITY_UNKNOWN: Final = "unknown"  # the provider gives no per-modality breakdown
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"

# Metric instruments of the GenAI client conventions (gen_ai.client.token.usage and
# gen_ai.token.type are gone: #374; gen_ai.client.operation.duration, for inference: #521).
METRIC_INFERENCE_DURATION: Final = "gen_ai.client.inference.duration"
METRIC_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.inference.time_to_first_chunk"
METRIC_USAGE_INPUT_TOKENS: Final = "gen_ai.client.inference.usage.input_tokens"
METRIC_USAGE_OUTPUT_TOKENS: Final = "gen_ai.client.inference.usage.output_tokens"
METRIC_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.client.inference.usage.cache_read.input_tokens"
METRIC_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.client.inference.usage.reasoning.output_tokens"
METRIC_OPERATION_INPUT_TOKENS: Final = "gen_ai.client.inference.operation.input_tokens"
METRIC_OPERATION_OUTPUT_TOKENS: Final = "gen_ai.client.inference.operation.output_tokens"
# One data point per recorder block (the invoke_workflow span's duration), migration.md #126/#341.
METRIC_INVOKE_WORKFLOW_DURATION: Final = "gen_ai.invoke_workflow.duration"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
ERROR_TYPE: Final = "error.type"

# Values of gen_ai.operation.name.
OPERATION_INVOKE_WORKFLOW: Final = "invoke_workflow"
OPERATION_CHAT: Final = "chat"

# The spec's own record of one inference, a log record (an event of the Logs API), opt-in.
EVENT_INFERENCE_DETAILS: Final = "gen_ai.client.inference.operation.details"

# --- OpenInference (Arize Phoenix) ----------------------------------------------------

# Phoenix maps gen_ai.operation.name to its span kinds but has none for invoke_workflow,
# so a recorder span would show as kind "unknown" there; CHAIN is OpenInference's kind
# for a span that groups calls.
OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"
OPENINFERENCE_KIND_CHAIN: Final = "CHAIN"
# OpenInference's output text: on a plain pair's call span, because Phoenix shows GenAI output
# messages only when they carry the (now deprecated) finish_reason, which a plain pair lacks.
OPENINFERENCE_OUTPUT_VALUE: Final = "output.value"

# --- promptrecorder's own -----------------------------------------------------------

# The two span events of one recorded pair. Jaeger shows them as the span's Logs.
EVENT_PROMPT: Final = "promptrecorder.prompt"
EVENT_RESPONSE: Final = "promptrecorder.response"

# The plain text, under short keys a person reads at once in Jaeger's Logs view.
PROMPT_TEXT: Final = "prompt"
RESPONSE_TEXT: Final = "response"

# A response that did not arrive whole (a stream closed early or failed midway) and why.
RESPONSE_COMPLETE: Final = "promptrecorder.response.complete"
RESPONSE_ERROR: Final = "promptrecorder.response.error"

# On a pair's events in place of their content, should building it fail (a bug of ours).
EXPORT_ERROR: Final = "promptrecorder.export_error"

# Pairs a prompt event with its response event (and with the in-memory record, and the
# pair's call span).
RECORD_ID: Final = "promptrecorder.record.id"
# A pair's usage on its events: not under gen_ai.usage.*, which only the call span carries,
# so that no backend summing gen_ai.usage.* over a trace counts a call twice.
USAGE_INPUT_TOKENS: Final = "promptrecorder.usage.input_tokens"
USAGE_OUTPUT_TOKENS: Final = "promptrecorder.usage.output_tokens"
# Original length in characters and SHA-256 of content that was truncated for export.
PROMPT_ORIGINAL_LENGTH: Final = "promptrecorder.prompt.original_length"
PROMPT_SHA256: Final = "promptrecorder.prompt.sha256"
RESPONSE_ORIGINAL_LENGTH: Final = "promptrecorder.response.original_length"
RESPONSE_SHA256: Final = "promptrecorder.response.sha256"
# Any other text cut for export says the same under its own key: `promptrecorder.<key>`
# (or the key itself when it is already ours) with these suffixes; see truncation_keys().
ORIGINAL_LENGTH_SUFFIX: Final = ".original_length"
SHA256_SUFFIX: Final = ".sha256"
# Caller-supplied metadata is exported under this prefix.
METADATA_PREFIX: Final = "promptrecorder.metadata."

# Span names: the recorder span is `invoke_workflow <name>` (the workflow convention); a
# call span `chat <model>` (`{gen_ai.operation.name} {gen_ai.request.model}`).
WORKFLOW_SPAN_PREFIX: Final = OPERATION_INVOKE_WORKFLOW + " "

# Segment spans: a block that records more pairs than one span may hold continues on
# numbered child spans of the recorder span, each linked to the one before it.
SEGMENT_INDEX: Final = "promptrecorder.segment.index"
SEGMENT_LINK_REASON: Final = "promptrecorder.link.reason"
SEGMENT_LINK_REASON_CONTINUES: Final = "continues"
SEGMENT_COUNT: Final = "promptrecorder.segment.count"
RECORD_COUNT: Final = "promptrecorder.record.count"

# The instrumentation scope under which every span is created.
INSTRUMENTATION_NAME: Final = "promptrecorder"


def truncation_keys(key: str) -> tuple[str, str]:
    """The keys of the original length and SHA-256 of a text cut for export under ``key``.

    ``prompt`` gives ``PROMPT_ORIGINAL_LENGTH`` and ``PROMPT_SHA256``; a metadata key gives
    ``promptrecorder.metadata.<key>.original_length``; ``gen_ai.request.model`` gives
    ``promptrecorder.gen_ai.request.model.original_length`` (ours, not the convention's).
    """
    base = key if key.startswith(_OURS) else _OURS + key
    return base + ORIGINAL_LENGTH_SUFFIX, base + SHA256_SUFFIX


_OURS: Final = INSTRUMENTATION_NAME + "."
