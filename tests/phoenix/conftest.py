"""The Arize Phoenix tier: a real LLM-observability backend, started on 127.0.0.1 for the session.

Opt in with ``PROMPTRECORDER_PHOENIX=1`` in an environment that has ``arize-phoenix``
(``pip install 'promptrecorder[phoenix]'``; about 850 MB, so keep it in a venv of its own)::

    PROMPTRECORDER_PHOENIX=1 python -m pytest -m phoenix tests/phoenix

Without the variable every test here is skipped, with that reason. Phoenix takes 10-20 s to
start; the fixture waits for it (bounded), and stops it afterwards: terminate, then kill.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.opt_in_servers import (
    LOOPBACK,
    free_port,
    opt_in_tier,
    stop_process_group,
    wait_until_healthy,
)

_HERE = Path(__file__).parent
OPT_IN = "PROMPTRECORDER_PHOENIX"


pytest_collection_modifyitems = opt_in_tier(
    _HERE,
    OPT_IN,
    f"the Phoenix tier is opt-in: set {OPT_IN}=1 in an environment with arize-phoenix installed",
)


@dataclass(frozen=True)
class Phoenix:
    """A running Phoenix: its OTLP/HTTP base URL (also the REST API and UI) and OTLP/gRPC URL."""

    http_url: str
    grpc_url: str
    http_port: int
    grpc_port: int
    log: Path


@pytest.fixture(scope="session")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    """Phoenix on 127.0.0.1 with a throwaway working directory (SQLite), for the whole session."""
    if importlib.util.find_spec("phoenix") is None:
        pytest.fail(
            f"{OPT_IN}=1 but arize-phoenix is not installed for {sys.executable}: "
            "pip install 'promptrecorder[phoenix]' (in a venv of its own; it is about 850 MB)"
        )
    workdir = tmp_path_factory.mktemp("phoenix")
    http_port, grpc_port = free_port(), free_port()
    while grpc_port == http_port:
        grpc_port = free_port()
    environment = {
        **os.environ,
        "PHOENIX_HOST": LOOPBACK,
        "PHOENIX_PORT": str(http_port),
        "PHOENIX_GRPC_PORT": str(grpc_port),
        "PHOENIX_WORKING_DIR": str(workdir),
        "PHOENIX_TELEMETRY_ENABLED": "false",
        "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
        "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",
        "PHOENIX_ENABLE_MCP_SERVER": "false",
    }
    for name in [name for name in environment if name.startswith("OTEL_")]:
        del environment[name]  # Phoenix's own tracing must not pick up a test's settings
    log = workdir / "phoenix.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(_HERE / "launch_phoenix.py")],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as one
        )
    server = Phoenix(
        http_url=f"http://{LOOPBACK}:{http_port}",
        grpc_url=f"http://{LOOPBACK}:{grpc_port}",
        http_port=http_port,
        grpc_port=grpc_port,
        log=log,
    )
    try:
        wait_until_healthy("Phoenix", f"{server.http_url}/healthz", process, log)
        yield server
    finally:
        stop_process_group(process)
