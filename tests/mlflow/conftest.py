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
OPT_IN = "PROMPTRECORDER_MLFLOW"


pytest_collection_modifyitems = opt_in_tier(
    _HERE,
    OPT_IN,
    f"the MLflow tier is opt-in: set {OPT_IN}=1 in an environment with mlflow installed",
)


@dataclass(frozen=True)
class Mlflow:
    """A running MLflow server: its base URL (tracking API, OTLP /v1/traces and UI)."""

    url: str
    port: int
    log: Path


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mlflow]:
    """``mlflow server`` on 127.0.0.1 with a throwaway SQLite store, for the whole session."""
    if importlib.util.find_spec("mlflow") is None:
        pytest.fail(f"{OPT_IN}=1 but mlflow is not installed for {sys.executable}: use .ci/run-mlflow")
    workdir = tmp_path_factory.mktemp("mlflow")
    port = free_port()
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
        wait_until_healthy("MLflow", f"{server.url}/health", process, log)
        yield server
    finally:
        stop_process_group(process)
