"""Recording: the ContextVar chain of active recorders, pairs, span events, the content policy, records.

Needs only ``opentelemetry-api``; imports nothing from ``promptrecorder.export``,
``promptrecorder.llm``, ``promptrecorder.readback`` or ``promptrecorder.cli``.
"""
