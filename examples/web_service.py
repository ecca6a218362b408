"""A small web service that records every prompt of every request: one recorder per request.

Standard library only (``http.server``), so it runs anywhere; the same shape fits FastAPI,
Flask or Django: ``configure()`` once at start-up, ``with PromptRecorder(...)`` around the
work of one request, ``promptrecorder.shutdown()`` on the way out.

    python examples/web_service.py                       # serves http://127.0.0.1:8000
    curl -s -X POST http://127.0.0.1:8000/ask -d '{"question": "Why is the printer jamming?"}'
    python examples/web_service.py --self-test           # one request to itself, then exits

The "model" is a stand-in function (no API key needed). Spans go to the collector named by
the standard variables, e.g. ``OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318`` with
``docker compose up``; with no endpoint set they are not exported, and each response still
carries the trace id and the pairs the request recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
import urllib.request
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import promptrecorder
from promptrecorder import PromptRecorder, autorecord

SERVICE_NAME = "promptrecorder-example-web"
LOOPBACK = "127.0.0.1"


def stand_in_model(prompt: str, step: str) -> str:
    """A stand-in for an LLM call; records the pair as a real client wrapper would."""
    started = datetime.now(timezone.utc)
    time.sleep(0.005)  # a stand-in for the network
    answer = {
        "plan": "Check the duplex unit, then the paper tray.",
        "answer": "Most duplex jams come from a worn roller in the duplex unit: replace it.",
    }[step]
    autorecord(
        prompt,
        answer,
        model="stand-in-1",
        started_at=started,
        ended_at=datetime.now(timezone.utc),
        input_tokens=len(prompt.split()),
        output_tokens=len(answer.split()),
        step=step,
    )
    return answer


def answer_question(question: str) -> str:
    """The request's work: two model calls. Nothing here knows about the recorder."""
    plan = stand_in_model(f"Plan how to answer: {question}", "plan")
    return stand_in_model(f"Question: {question}\nPlan: {plan}\nAnswer in one sentence.", "answer")


class Handler(BaseHTTPRequestHandler):
    server_version = "promptrecorder-example/1"

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(200, {"status": "ok"})
        else:
            self._reply(404, {"error": f"no route {self.path}; POST /ask or GET /healthz"})

    def do_POST(self) -> None:
        if self.path != "/ask":
            self._reply(404, {"error": f"no route {self.path}; POST /ask"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            question = json.loads(self.rfile.read(length) or b"{}")["question"]
            if not isinstance(question, str) or not question.strip():
                raise ValueError("`question` must be a non-empty string")
        except (ValueError, KeyError, TypeError) as error:
            self._reply(400, {"error": f"send JSON like {{'question': '...'}}: {error}"})
            return
        # One recorder per request: its span is the request's trace, its records the request's pairs.
        # max_records bounds its memory; it is dropped with the request anyway.
        with PromptRecorder("ask", attributes={"http.route": "/ask"}, max_records=100) as recorder:
            answer = answer_question(question)
        records = recorder.records
        self._reply(
            200,
            {
                "answer": answer,
                "trace_id": records[0].trace_id if records else None,
                "pairs": [{"prompt": r.prompt, "response": r.response, "model": r.model} for r in records],
            },
        )

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        print(f"{self.address_string()} {format % args}", flush=True)


def start_telemetry() -> None:
    """configure() once at start-up; without an endpoint, record but export nothing."""
    has_endpoint = any(
        os.environ.get(name) for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    promptrecorder.configure(service_name=SERVICE_NAME, exporter=None if has_endpoint else "none")
    if not has_endpoint:
        print("no OTEL_EXPORTER_OTLP_ENDPOINT set: spans are recorded but not exported", flush=True)


def self_test(server: ThreadingHTTPServer) -> int:
    """Ask the running server one question over HTTP; 0 when the answer and its pairs came back."""
    host, port = server.server_address[:2]
    request = urllib.request.Request(
        f"http://{host}:{port}/ask",
        data=json.dumps({"question": "Why does the printer jam on duplex jobs?"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.loads(response.read())
    print(json.dumps(body, indent=2))
    ok = bool(body.get("answer")) and len(body.get("pairs", [])) == 2
    print("self-test passed" if ok else "self-test FAILED", flush=True)
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description="A web service with one PromptRecorder per request.")
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default 8000)")
    parser.add_argument(
        "--self-test", action="store_true", help="serve on a free port, ask one question, and exit"
    )
    args = parser.parse_args()

    start_telemetry()
    server = ThreadingHTTPServer((LOOPBACK, 0 if args.self_test else args.port), Handler)
    serving = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    serving.start()
    print(f"serving on http://{LOOPBACK}:{server.server_address[1]} (POST /ask, GET /healthz)", flush=True)
    status = 0
    try:
        if args.self_test:
            status = self_test(server)
        else:
            stop = threading.Event()
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stop.set())
            stop.wait()
    finally:
        server.shutdown()  # finish the requests in flight
        server.server_close()
        # Send what is still queued, waiting at most 5 s (also registered to run at exit).
        delivered = promptrecorder.flush(timeout=5)
        promptrecorder.shutdown()
        print(f"stopped; spans {'delivered' if delivered else 'NOT all delivered'}", flush=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
