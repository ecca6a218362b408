"""One recorded session for the GenAI-view tiers (Phoenix, MLflow): every path a pair can take.

``record_session`` records, in one trace and one conversation, what issue 14 sent to the
backends by hand: an outer recorder with a conversation id; plain ``autorecord`` pairs (a str
prompt with its own start and end, a chat-message prompt); a nested recorder with more pairs
than one span's 128 events hold (so segment spans happen); a 200,000-character prompt (cut for
export); unicode with lone surrogates; an exception raised inside a nested block; and bot calls
with their CLIENT spans (``SimpleBot``, a streamed call, a two-turn ``ChatBot``, a call the
server refuses) over the repo's fake OpenAI server (no socket). The tiers then read the
session back through the backend's own API and compare it with ``recorder.records``.

``exported_text`` says what a recorded text looks like once exported (lone surrogates
replaced, long text cut with the marker), so a backend's copy can be compared exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import openai
import pytest

from promptrecorder import ChatBot, PromptRecord, PromptRecorder, SimpleBot, autorecord
from promptrecorder.recording.content import DEFAULT_MAX_CONTENT_LENGTH, TRUNCATION_MARKER
from tests.fake_openai import FakeOpenAI, chunks, completion, error_reply, stream_reply, token_usage

SYSTEM = "You are the help desk's assistant. Answer in one sentence."
BOT_MODEL = "gpt-4o-mini"
AUTORECORD_MODEL = "gpt-4o-mini"
TRIAGE_MODEL = "llama-3-8b-instruct"
TRIAGE_PAIRS = 140  # 280 events: more than one span's 128, so the nested recorder segments
BIG_PROMPT_LENGTH = 200_000
UNICODE_PROMPT = "Ünïcødé ✓ 日本語 — 🎉 and a lone surrogate \ud800 in the prompt"
UNICODE_RESPONSE = "Réponse complète: 完了 \udfff (another lone one)"
FIRST_PROMPT = "Summarise ticket 42: the printer on floor 3 jams on duplex jobs."
LAST_RESPONSE = "Ticket 42 closed: the duplex unit was replaced."


@dataclass(frozen=True)
class Session:
    """The recorded session: the outer recorder and what the tiers look for in it."""

    recorder: PromptRecorder
    conversation_id: str
    big: PromptRecord
    unicode: PromptRecord
    failed_block: PromptRecord
    refused_call: PromptRecord

    @property
    def records(self) -> list[PromptRecord]:
        return list(self.recorder.records)


def exported_text(text: str, limit: int = DEFAULT_MAX_CONTENT_LENGTH) -> str:
    """``text`` as promptrecorder exports it: lone surrogates become U+FFFD, long text is cut."""
    if not text.isascii():
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text if len(text) <= limit else text[:limit] + TRUNCATION_MARKER


def message_texts(messages_json: str | None) -> list[str]:
    """The text parts of a ``gen_ai.{input,output}.messages`` JSON value, in order."""
    if not messages_json:
        return []
    messages: list[dict[str, Any]] = json.loads(messages_json)
    return [
        str(part.get("content"))
        for message in messages
        for part in message.get("parts", [])
        if part.get("type") == "text"
    ]


def tokens(records: list[PromptRecord]) -> tuple[int, int]:
    """The session's input and output tokens, each call counted once."""
    return (
        sum(record.input_tokens or 0 for record in records),
        sum(record.output_tokens or 0 for record in records),
    )


def _fake_server() -> FakeOpenAI:
    """Replies in the order the session asks: call, stream, two chat turns, then refusals."""
    return FakeOpenAI(
        completion("Duplex jams usually mean a worn separation pad.", usage=token_usage(31, 12)),
        stream_reply(chunks(["Replace ", "the ", "pad."], usage=token_usage(27, 5))),
        completion("The printer is a LaserJet M607 on floor 3.", usage=token_usage(44, 14)),
        completion("Order part RM2-5425, the separation pad.", usage=token_usage(71, 11)),
        error_reply(429, "Rate limit reached for gpt-4o-mini"),
    )


def record_session(conversation_id: str) -> Session:
    """Record the whole session (about 150 pairs) in one trace; see the module docstring."""
    server = _fake_server()
    client = server.client()
    start = datetime.now(timezone.utc) - timedelta(seconds=2)
    with PromptRecorder(
        "support-session", attributes={"ticket": 42}, conversation_id=conversation_id
    ) as session:
        autorecord(
            FIRST_PROMPT,
            "The third-floor printer jams on every duplex job.",
            model=AUTORECORD_MODEL,
            started_at=start,
            ended_at=start + timedelta(milliseconds=420),
            input_tokens=17,
            output_tokens=11,
        )
        autorecord(
            [
                {"role": "system", "content": "You are a terse assistant."},
                {"role": "user", "content": "Draft a one-line reply to the ticket."},
            ],
            "Thanks: a technician will look at the duplex unit today.",
            model=AUTORECORD_MODEL,
            input_tokens=25,
            output_tokens=12,
        )
        with PromptRecorder("triage"):
            for index in range(TRIAGE_PAIRS):
                autorecord(
                    f"Triage step {index:03d}: is this log line about the duplex unit?",
                    f"Step {index:03d}: {'yes' if index % 3 else 'no'}",
                    model=TRIAGE_MODEL,
                    input_tokens=20 + index % 7,
                    output_tokens=3 + index % 4,
                )
        big = autorecord("BIG " + "q" * (BIG_PROMPT_LENGTH - 4), "Read it all.", model=AUTORECORD_MODEL)
        unicode = autorecord(UNICODE_PROMPT, UNICODE_RESPONSE, model=AUTORECORD_MODEL, input_tokens=30)
        with pytest.raises(RuntimeError, match="parts database unreachable"), PromptRecorder("lookup"):
            failed_block = autorecord(
                "Look up the part number for the separation pad.",
                "Looking it up in the parts database.",
                model=AUTORECORD_MODEL,
                input_tokens=12,
                output_tokens=8,
            )
            raise RuntimeError("parts database unreachable")

        bot = SimpleBot(SYSTEM, model=BOT_MODEL, client=client)
        bot("Why does a duplex printer jam?")
        "".join(bot.stream("What should the technician replace?"))
        chat = ChatBot(SYSTEM, model=BOT_MODEL, client=client, conversation_id=conversation_id)
        chat("Which printer is it?")
        chat("Which part should we order?")
        with pytest.raises(openai.RateLimitError):
            bot("Order it now.")
        refused_call = session.records[-1]

        autorecord(
            "Close ticket 42 with a summary.",
            LAST_RESPONSE,
            model=AUTORECORD_MODEL,
            input_tokens=22,
            output_tokens=9,
        )
    assert big is not None
    assert unicode is not None
    assert failed_block is not None
    assert refused_call.error is not None, refused_call
    return Session(session, conversation_id, big, unicode, failed_block, refused_call)
