#!/usr/bin/env python3
"""Wait until a URL answers HTTP 200, then replace this process with a command.

    wait-for-http URL [--timeout SECONDS] -- COMMAND [ARG...]

Used by the `demo` service of docker-compose.yml to wait for the OpenTelemetry
Collector's `health_check` extension (http://otel-collector:13133/) before the
demo exports. The collector image has no shell, curl or wget, so Docker cannot
health-check it from inside its container; the demo image has Python, so the check
runs from there instead. Without it the demo can lose a start-up race: it gives up
exporting after a few seconds, and a collector still starting refuses connections.

Standard library only. Exit status: that of COMMAND once the URL is ready, 1 if it
did not become ready in time, 2 for a usage error, 127 if COMMAND cannot be run.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request

USAGE = "usage: wait-for-http URL [--timeout SECONDS] -- COMMAND [ARG...]"
POLL_INTERVAL_S = 0.5
REQUEST_TIMEOUT_S = 2.0


def is_ready(url: str) -> tuple[bool, str]:
    """Whether `url` answers 200 now, and what happened otherwise."""
    try:
        with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_S) as response:
            return response.status == 200, f"HTTP {response.status}"
    except urllib.error.HTTPError as error:  # e.g. 503 while the pipelines start
        return False, f"HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return False, str(getattr(error, "reason", error))


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print(USAGE, file=sys.stderr)
        return 2
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1 :]
    timeout = 60.0
    if len(options) == 3 and options[1] == "--timeout":
        try:
            timeout = float(options[2])
        except ValueError:
            options = []
    if len(options) not in (1, 3) or not command:
        print(USAGE, file=sys.stderr)
        return 2
    url = options[0]

    deadline = time.monotonic() + timeout
    ready, detail = is_ready(url)
    while not ready:
        if time.monotonic() >= deadline:
            print(
                f"wait-for-http: {url} not ready after {timeout:g}s ({detail}). "
                "Is the collector running? See `docker compose logs otel-collector`.",
                file=sys.stderr,
            )
            return 1
        time.sleep(POLL_INTERVAL_S)
        ready, detail = is_ready(url)

    sys.stdout.flush()
    try:
        os.execvp(command[0], command)  # replaces this process: no return on success
    except OSError as error:
        print(f"wait-for-http: cannot run {command[0]!r}: {error}", file=sys.stderr)
        return 127
    return 0  # pragma: no cover - execvp never returns normally


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
