"""Every span name part, event name and attribute key that promptrecorder emits.

The ``gen_ai.*`` strings follow the OpenTelemetry GenAI semantic conventions
(Development stability, read 2026-11). They are defined here rather than imported
from ``opentelemetry-semantic-conventions``, whose ``gen_ai`` constants are deprecated.
Moving to the spec's log-based event later changes this module only.
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
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"

# Metric instruments of the GenAI client conventions.
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
ERROR_TYPE: Final = "error.type"

# Values of gen_ai.operation.name.
OPERATION_INVOKE_WORKFLOW: Final = "invoke_workflow"
OPERATION_CHAT: Final = "chat"

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

# Pairs a prompt event with its response event (and with the in-memory record).
RECORD_ID: Final = "promptrecorder.record.id"
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
