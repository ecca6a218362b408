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
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

_HERE = Path(__file__).parent
OPT_IN = "PROMPTRECORDER_PHOENIX"
LOOPBACK = "127.0.0.1"
_START_TIMEOUT_S = 120.0
_STOP_TIMEOUT_S = 20.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(OPT_IN) == "1":
        return
    skip = pytest.mark.skip(
        reason=f"the Phoenix tier is opt-in: set {OPT_IN}=1 in an environment with arize-phoenix installed"
    )
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(skip)


@dataclass(frozen=True)
class Phoenix:
    """A running Phoenix: its OTLP/HTTP base URL (also the REST API and UI) and OTLP/gRPC URL."""

    http_url: str
    grpc_url: str
    http_port: int
    grpc_port: int
    log: Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="session")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    """Phoenix on 127.0.0.1 with a throwaway working directory (SQLite), for the whole session."""
    if importlib.util.find_spec("phoenix") is None:
        pytest.fail(
            f"{OPT_IN}=1 but arize-phoenix is not installed for {sys.executable}: "
            "pip install 'promptrecorder[phoenix]' (in a venv of its own; it is about 850 MB)"
        )
    workdir = tmp_path_factory.mktemp("phoenix")
    http_port, grpc_port = _free_port(), _free_port()
    while grpc_port == http_port:
        grpc_port = _free_port()
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
        )
    server = Phoenix(
        http_url=f"http://{LOOPBACK}:{http_port}",
        grpc_url=f"http://{LOOPBACK}:{grpc_port}",
        http_port=http_port,
        grpc_port=grpc_port,
        log=log,
    )
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _healthy(server.http_url):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:]
                pytest.fail(f"Phoenix did not become healthy within {_START_TIMEOUT_S:.0f} s:\n{tail}")
            time.sleep(0.5)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=_STOP_TIMEOUT_S)
