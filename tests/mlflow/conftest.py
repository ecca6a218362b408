"""The MLflow tier: a real MLflow tracking server, started on 127.0.0.1 for the session.

Opt in with ``PROMPTRECORDER_MLFLOW=1`` in an environment that has ``mlflow`` (about 850 MB,
so keep it in a venv of its own; ``.ci/run-mlflow`` makes one)::

    PROMPTRECORDER_MLFLOW=1 python -m pytest -p no:phoenix -m mlflow tests/mlflow

Without the variable every test here is skipped, with that reason. The server (SQLite in a
tmp dir, one worker) takes 10-20 s to start; the fixture waits for ``/health`` (bounded) and
stops the process group it started afterwards: terminate, then kill. MLflow ingests OTLP over
HTTP only, at ``/v1/traces``, and files each trace under the experiment named by the
``x-mlflow-experiment-id`` header.
"""

from __future__ import annotations

import importlib.util
import os
import signal
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
OPT_IN = "PROMPTRECORDER_MLFLOW"
LOOPBACK = "127.0.0.1"
_START_TIMEOUT_S = 120.0
_STOP_TIMEOUT_S = 20.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(OPT_IN) == "1":
        return
    skip = pytest.mark.skip(
        reason=f"the MLflow tier is opt-in: set {OPT_IN}=1 in an environment with mlflow installed"
    )
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(skip)


@dataclass(frozen=True)
class Mlflow:
    """A running MLflow server: its base URL (tracking API, OTLP /v1/traces and UI)."""

    url: str
    port: int
    log: Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate the server's process group (it forks uvicorn workers), then kill it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mlflow]:
    """``mlflow server`` on 127.0.0.1 with a throwaway SQLite store, for the whole session."""
    if importlib.util.find_spec("mlflow") is None:
        pytest.fail(f"{OPT_IN}=1 but mlflow is not installed for {sys.executable}: use .ci/run-mlflow")
    workdir = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    environment = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "PYTHONWARNINGS": "ignore",
    }
    for name in [name for name in environment if name.startswith(("OTEL_", "MLFLOW_TRACKING"))]:
        del environment[name]  # the server's own tracing must not pick up a test's settings
    log = workdir / "mlflow.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "mlflow", "server",
                "--host", LOOPBACK,
                "--port", str(port),
                "--workers", "1",
                "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
                "--artifacts-destination", str(workdir / "artifacts"),
            ],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as one
        )  # fmt: skip
    server = Mlflow(url=f"http://{LOOPBACK}:{port}", port=port, log=log)
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _healthy(server.url):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:]
                pytest.fail(f"MLflow did not become healthy within {_START_TIMEOUT_S:.0f} s:\n{tail}")
            time.sleep(0.5)
        yield server
    finally:
        _stop(process)
