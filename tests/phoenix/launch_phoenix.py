"""Start Arize Phoenix with every listening socket on 127.0.0.1.

Phoenix's HTTP server honours ``PHOENIX_HOST``, but its OTLP/gRPC server binds ``[::]``
whatever that says. This launcher rewrites the wildcard address grpc.aio is asked for into
``127.0.0.1`` before Phoenix starts, then runs ``phoenix serve``.

Usage (the Phoenix tier's fixture does this)::

    PHOENIX_HOST=127.0.0.1 PHOENIX_PORT=... PHOENIX_GRPC_PORT=... PHOENIX_WORKING_DIR=<tmp> \\
        python tests/phoenix/launch_phoenix.py
"""

from __future__ import annotations

import os
import sys
from typing import Any

LOOPBACK = "127.0.0.1"
_WILDCARDS = ("[::]", "0.0.0.0", "", "::")


def _bind_grpc_to_loopback() -> None:
    from grpc.aio import _server  # the class grpc.aio.server() instantiates

    original = _server.Server.add_insecure_port

    def add_insecure_port(self: Any, address: str) -> int:
        host, _, port = address.rpartition(":")
        if host in _WILDCARDS:
            address = f"{LOOPBACK}:{port}"
        return int(original(self, address))

    _server.Server.add_insecure_port = add_insecure_port  # type: ignore[method-assign]


def main() -> None:
    host = os.environ.get("PHOENIX_HOST")
    if host != LOOPBACK:
        sys.exit(f"launch_phoenix: PHOENIX_HOST must be {LOOPBACK}, got {host!r}")
    _bind_grpc_to_loopback()
    from phoenix.server.main import main as phoenix_main

    sys.argv = ["phoenix", "serve"]
    phoenix_main()


if __name__ == "__main__":
    main()
