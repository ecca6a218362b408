"""The ``promptrecorder`` command line.

Exit codes: 0 success, 1 failure (with one sentence and the next step), 2 usage error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from promptrecorder import settings
from promptrecorder._version import __version__
from promptrecorder.console import format_records_table
from promptrecorder.demo import run_session
from promptrecorder.telemetry import configure, delivery_stats, destinations, flush, shutdown

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
# A demo should say quickly that the collector is not there, rather than retry for long.
_DEMO_EXPORT_TIMEOUT_S = 3.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promptrecorder",
        description="Record LLM prompts and responses as OpenTelemetry traces.",
    )
    parser.add_argument("--version", action="version", version=f"promptrecorder {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    demo = commands.add_parser(
        "demo",
        help="run a short scripted session on an offline stand-in model and show its trace",
        description=(
            "Run a short scripted session inside `with recorder:` (two prompts and a nested "
            "recorder) on an offline stand-in model, print the recorded pairs, and export the "
            "trace: to the OTLP endpoint when one is given (flag or OTEL_EXPORTER_OTLP_ENDPOINT), "
            "else to the console."
        ),
    )
    demo.add_argument("--endpoint", help="OTLP collector URL (default: $OTEL_EXPORTER_OTLP_ENDPOINT)")
    demo.add_argument(
        "--protocol",
        choices=settings.PROTOCOLS,
        help="OTLP protocol (default: $OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf)",
    )
    demo.add_argument(
        "--console", action="store_true", help="print spans to the console even with an endpoint"
    )
    demo.add_argument("--service-name", default=None, help="service.name (default: promptrecorder-demo)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``promptrecorder`` command."""
    args = _parser().parse_args(argv)  # exits with 2 on a usage error
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.command == "demo":
        return _demo(args)
    return EXIT_USAGE  # pragma: no cover - argparse rejects unknown commands first


def _demo(args: argparse.Namespace) -> int:
    has_endpoint = bool(
        args.endpoint
        or settings.env(settings.OTEL_EXPORTER_OTLP_ENDPOINT)
        or settings.env(settings.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
    )
    exporters = ["otlp"] if has_endpoint else []
    if args.console or not has_endpoint:
        exporters.append("console")
    service_name = args.service_name or settings.env(settings.OTEL_SERVICE_NAME) or "promptrecorder-demo"
    try:
        configure(
            service_name=service_name,
            endpoint=args.endpoint,
            protocol=args.protocol,
            exporter=exporters,
            timeout=_DEMO_EXPORT_TIMEOUT_S,
        )
    except (ValueError, TypeError) as error:
        print(
            f"promptrecorder: {error}. Check --endpoint/--protocol and the OTEL_* variables.", file=sys.stderr
        )
        return EXIT_USAGE

    print("promptrecorder demo: a scripted session on the offline stand-in model (no API key needed)\n")
    result = run_session()
    delivered = flush(timeout=2 * _DEMO_EXPORT_TIMEOUT_S)
    errors = [stats.last_error for stats in delivery_stats() if stats.last_error]
    print()
    print(format_records_table(result.recorder.records))
    print()
    where = ", ".join(destinations())
    print(f"trace {result.trace_id} sent to {where}")
    if has_endpoint and delivered:
        print(f"In Jaeger: http://localhost:16686/trace/{result.trace_id}")
    shutdown(timeout=2.0)
    if not delivered:
        reason = errors[0] if errors else "the collector did not accept the spans in time"
        print(
            f"promptrecorder: the trace was not delivered ({reason}). "
            "Is the collector running and listening on that endpoint? Try `docker compose up -d`.",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
