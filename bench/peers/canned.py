"""The one request and the one canned reply every openai row of the benchmark uses.

Stand-alone (no promptrecorder import) because it also runs in the peers' venv. The reply
is what api.openai.com sends for a chat completion, ``usage`` details included: OpenLLMetry
swallows a TypeError on every call without ``usage.prompt_tokens_details`` and other
instrumentations read ``service_tier`` and ``system_fingerprint``, so a thinner body would
measure an error path. Its shape follows ``tests/fake_openai.py``'s ``completion()``.
"""

from __future__ import annotations

import json
from typing import Any

BASE_URL = "https://api.openai.com/v1"
MODEL = "gpt-4o-mini"

SYSTEM = "You are a terse support assistant. Answer in at most three sentences."
PROMPT = (
    "Summarise ticket 42 for the on-call engineer: the label printer on floor 3 jams after every "
    "second job since this morning's driver update, and the queue now holds 57 documents."
)
ANSWER = (
    "Since today's driver update the floor-3 label printer jams on every second job; 57 documents "
    "are queued. Roll the driver back or reseat the label roll, then clear the queue."
)

MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": PROMPT},
]

REPLY: dict[str, Any] = {
    "id": "chatcmpl-Bq7fX2mKz9LwP4sN8vT1uY6rE3aQd",
    "object": "chat.completion",
    "created": 1_767_225_600,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": ANSWER, "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 58,
        "completion_tokens": 41,
        "total_tokens": 99,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_560af6e559",
}
REPLY_BYTES = json.dumps(REPLY).encode()
REPLY_HEADERS = {
    "content-type": "application/json",
    "x-request-id": "req_0123456789abcdef0123456789abcdef",
    "openai-processing-ms": "212",
}


def client() -> Any:
    """An ``openai.OpenAI`` on httpx2's MockTransport that answers every request with ``REPLY``."""
    import httpx2
    import openai

    def handle(request: Any) -> Any:
        request.read()
        return httpx2.Response(200, headers=REPLY_HEADERS, content=REPLY_BYTES)

    return openai.OpenAI(
        api_key="sk-bench",
        base_url=BASE_URL,
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handle)),
    )


def call(client: Any) -> Any:
    """The call every row times."""
    return client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0.2)
