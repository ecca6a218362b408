"""The ``promptrecorder`` command line: ``demo``, ``check``, ``show`` and ``read``.

Exit codes: 0 success, 1 failure (with one sentence and the next step), 2 usage error.
This module parses arguments and prints; the work is done in ``demo``, ``check`` and ``show``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from promptrecorder import settings
from promptrecorder._version import __version__
from promptrecorder.cli.check import DEFAULT_TIMEOUT_S, resolve_target, run_check
from promptrecorder.cli.check_report import describe, environment_notes, verdict
from promptrecorder.cli.demo import run_session
from promptrecorder.cli.show import json_lines, read_records, render_table
from promptrecorder.errors import DemoModelError, UnreadableRecordsError
from promptrecorder.export.console import format_records_table
from promptrecorder.export.telemetry import configure, delivery_stats, destinations, flush, shutdown
from promptrecorder.terminal_text import printable

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
# A reader that closed the pipe: 128 + SIGPIPE, what a shell reports for a filter killed by it.
EXIT_BROKEN_PIPE = 141
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
        help="run a short scripted session and show its trace (offline stand-in model by default)",
        description=(
            "Run a short scripted session inside `with recorder:` (two prompts, one streamed, and a "
            "nested recorder) through SimpleBot/ChatBot, print the recorded pairs, and export the "
            "trace: to the OTLP endpoint when one is given (flag or OTEL_EXPORTER_OTLP_ENDPOINT), "
            "else to the console. The model is a real one when OPENAI_API_KEY or OPENAI_BASE_URL is "
            "set (PROMPTRECORDER_DEMO_MODEL names it, default gpt-4o-mini), else an offline stand-in "
            "that needs no API key."
        ),
    )
    _add_endpoint_flags(demo)
    demo.add_argument(
        "--console", action="store_true", help="print spans to the console even with an endpoint"
    )
    demo.add_argument("--service-name", default=None, help="service.name (default: promptrecorder-demo)")

    check = commands.add_parser(
        "check",
        help="send one test span with a prompt/response pair and say whether the collector took it",
        description=(
            "Send one test span carrying a prompt/response pair to the OTLP endpoint that "
            "configure() would use (flags, else the OTEL_* variables), wait for the answer, and "
            "say plainly whether it was accepted, and if not, why and what to try. "
            "Exit 0: accepted; 1: not accepted; 2: usage error."
        ),
    )
    _add_endpoint_flags(check)
    check.add_argument(
        "--header",
        action="append",
        metavar="KEY=VALUE",
        help="a header to send, taken literally, e.g. 'authorization=Bearer TOKEN'; repeatable; replaces "
        "$OTEL_EXPORTER_OTLP_HEADERS (only header names are ever printed)",
    )
    check.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"seconds the connection and the export may each take (default: {DEFAULT_TIMEOUT_S:g})",
    )
    check.add_argument(
        "--service-name", default=None, help="service.name of the test span (default: promptrecorder-check)"
    )

    show = commands.add_parser(
        "show",
        help="print records saved with recorder.to_jsonl() as a table or as JSON lines",
        description=(
            "Print the records a recorder saved with recorder.to_jsonl(FILE): a readable table, "
            "or JSON lines with --json. Exit 0: shown; 1: the file or a line cannot be read; "
            "2: usage error; 141: the reader closed the pipe (| head)."
        ),
    )
    show.add_argument("file", metavar="FILE.jsonl", help="a file written by recorder.to_jsonl()")
    show.add_argument("--json", action="store_true", help="print JSON lines, as to_jsonl() writes them")
    show.add_argument(
        "--limit",
        type=_positive_int,
        default=None,
        metavar="N",
        help="show the first N records only; the rest of the file is not read",
    )
    _add_read_command(commands)
    return parser


def _add_read_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    read = commands.add_parser(
        "read",
        help="read recorded pairs back from Jaeger or an OTLP JSON file, and print or save them",
        description=(
            "Read the prompt/response pairs of recorded traces back into records: from Jaeger's "
            "query API (--jaeger URL with --trace-id, or --service for its recent traces) or from "
            "an OTLP JSON file (Jaeger's /api/v3 answer, the Collector's file exporter). Prints "
            "them as `show` does, or saves them with --jsonl for recorder.from_jsonl(). "
            "Exit 0: read; 1: Jaeger or the file could not be read; 2: usage error."
        ),
    )
    read.add_argument("file", nargs="?", metavar="FILE.json", help="an OTLP JSON file (instead of --jaeger)")
    read.add_argument("--jaeger", metavar="URL", help="Jaeger's query URL, e.g. http://localhost:16686")
    read.add_argument("--trace-id", metavar="ID", help="the trace to read (32 hex digits)")
    read.add_argument("--service", metavar="NAME", help="read the recent traces of this service.name")
    read.add_argument("--since", metavar="AGE", help="with --service: traces started within AGE (default 1h)")
    read.add_argument(
        "--limit", type=_positive_int, metavar="N", help="with --service: at most N traces (default 20)"
    )
    read.add_argument("--jsonl", metavar="OUT", help="save the records to OUT as to_jsonl() writes them")
    read.add_argument("--json", action="store_true", help="print JSON lines, as to_jsonl() writes them")


def _add_endpoint_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint", help="OTLP collector URL (default: $OTEL_EXPORTER_OTLP_ENDPOINT)")
    parser.add_argument(
        "--protocol",
        choices=settings.PROTOCOLS,
        help="OTLP protocol (default: $OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf)",
    )


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``promptrecorder`` command."""
    args = _parser().parse_args(argv)  # exits with 2 on a usage error
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        return _run(args)
    except BrokenPipeError:
        # The reader went away (`promptrecorder show FILE | head`): stop quietly, as a Unix
        # filter does. Point stdout at /dev/null so that the interpreter's own flush at exit
        # does not fail on the closed pipe again (the recipe of Python's `signal` docs).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        return _demo(args)
    if args.command == "check":
        return _check(args)
    if args.command == "show":
        return _show(args)
    if args.command == "read":
        return _read(args)
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

    print("promptrecorder demo: a scripted session inside `with recorder:`")
    try:
        result = run_session()
    except DemoModelError as error:
        print(f"promptrecorder: {error}", file=sys.stderr)
        shutdown(timeout=2.0)
        return EXIT_FAILURE
    print()
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


def _check(args: argparse.Namespace) -> int:
    try:
        target = resolve_target(args.endpoint, args.protocol, args.header, args.timeout, args.service_name)
    except ValueError as error:
        print(
            f"promptrecorder check: {error}. Check --endpoint/--protocol/--header and the OTEL_* variables.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    print(describe(target), flush=True)
    outcome = run_check(target)
    happened, next_step = verdict(target, outcome)
    stream = sys.stdout if outcome.accepted else sys.stderr
    print(happened, file=stream)
    print(next_step, file=stream)
    for note in environment_notes():
        print(note, file=stream)
    return EXIT_OK if outcome.accepted else EXIT_FAILURE


def _show(args: argparse.Namespace) -> int:
    try:
        found = read_records(args.file, limit=args.limit)
    except UnreadableRecordsError as error:
        # printable: the sentence quotes the file name and bits of the line, which are data.
        print(
            printable(f"promptrecorder show: {error}. Give a file written by recorder.to_jsonl(path)."),
            file=sys.stderr,
        )
        return EXIT_FAILURE
    if args.json:
        sys.stdout.writelines(json_lines(found.records))
    else:
        print(render_table(found.records, args.file, more=found.more))
    return EXIT_OK


def _read(args: argparse.Namespace) -> int:
    # Imported here: reading back is rare next to demo/check/show.
    from promptrecorder.credentials import mask_url
    from promptrecorder.errors import TraceReadError
    from promptrecorder.readback.jaeger_query import read_jaeger
    from promptrecorder.readback.otlp_json import read_otlp_json
    from promptrecorder.recording.records import write_jsonl

    usage = _read_usage_error(args)
    if usage:
        print(f"promptrecorder read: {usage}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.file:
            records, source = read_otlp_json(args.file), args.file
        else:
            records = read_jaeger(
                args.jaeger, trace_id=args.trace_id, service=args.service, since=args.since, limit=args.limit
            )
            what = f"trace {args.trace_id}" if args.trace_id else f"service {args.service!r}"
            source = f"Jaeger at {mask_url(args.jaeger)}, {what}"
    except ValueError as error:  # a bad --trace-id, --since or URL
        print(f"promptrecorder read: {error}", file=sys.stderr)
        return EXIT_USAGE
    except TraceReadError as error:
        print(f"promptrecorder read: {error}.", file=sys.stderr)
        return EXIT_FAILURE
    if args.jsonl:
        print(f"wrote {write_jsonl(records, args.jsonl)} records to {args.jsonl}")
    elif args.json:
        sys.stdout.writelines(json_lines(records))
    elif records:
        print(f"{format_records_table(records)}\n\n{len(records)} records from {source}")
    else:
        print(f"{source}: no recorded pairs")
    return EXIT_OK


def _read_usage_error(args: argparse.Namespace) -> str | None:
    if bool(args.file) == bool(args.jaeger):
        return "give an OTLP JSON FILE or --jaeger URL (one of them)"
    if args.jaeger and (args.trace_id is None) == (args.service is None):
        return "with --jaeger, give --trace-id ID or --service NAME (one of them)"
    if args.file and (args.trace_id or args.service or args.since or args.limit):
        return "--trace-id, --service, --since and --limit go with --jaeger, not with a FILE"
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
