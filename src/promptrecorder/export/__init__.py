"""Export: ``configure()``, the delivery processor, the spool and the OTLP senders.

Reads what recording leaves behind (span attributes named in ``recording.semconv``, the
per-recorder ``recording.ledger``); recording never imports it.
"""
