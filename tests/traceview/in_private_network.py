"""Run inside ``unshare -n``: trace-view, the whole recorded session sent to it, its session page.

trace-view's ``tv`` binds 0.0.0.0 and has no option to bind one address, so the tier runs it
in a network namespace of its own (``unshare -n``), where the only interface is that
namespace's loopback: nothing outside the namespace, this machine included, can reach it.
This script brings the loopback up, starts ``tv``, waits for it (bounded), records
``tests.phoenix.genai_session.record_session`` into it over OTLP/HTTP, flushes, fetches the
session's page, stops ``tv`` and prints one JSON line: the records and the page.

    unshare -n python tests/traceview/in_private_network.py TV_BINARY WORKDIR
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from promptrecorder import configure, flush, shutdown  # noqa: E402
from tests.phoenix.genai_session import record_session  # noqa: E402

PORT = 4318  # any: the namespace has nothing else
CONVERSATION = "conv-traceview-tier"
START_TIMEOUT_S = 30.0


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode("utf-8"))
    except (urllib.error.URLError, OSError):
        return None


def main() -> int:
    binary, workdir = sys.argv[1], Path(sys.argv[2])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    base = f"http://127.0.0.1:{PORT}"
    with open(workdir / "tv.log", "wb") as log:
        server = subprocess.Popen(
            [binary, "--port", str(PORT), "--db", str(workdir / "traces.db"), "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while _get(base + "/") is None:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"trace-view did not start: {(workdir / 'tv.log').read_text()[-2000:]}")
            time.sleep(0.2)
        configure(service_name="promptrecorder-traceview", endpoint=base, protocol="http/protobuf")
        session = record_session(CONVERSATION)
        if not flush(timeout=60):
            raise SystemExit("the session was not delivered to trace-view")
        shutdown()
        time.sleep(1.0)  # tv writes spans in batches of 100 ms
        page = _get(f"{base}/sessions/{CONVERSATION}")
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(json.dumps({"records": [r.to_dict() for r in session.records], "page": page}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
