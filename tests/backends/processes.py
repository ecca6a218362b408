"""Jaeger v2 and our Collector as child processes on 127.0.0.1, run with the config/ files as-is.

The config files that docker-compose.yml mounts are passed with ``--config`` unmodified;
only environment variables differ (``${env:VAR:-default}`` in the files): every address
becomes a free 127.0.0.1 port, the programs' own metrics are turned off (both would take
port 8888), and a test may change a limit. ``backends/build.sh`` builds the binaries.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "backends" / "bin"
JAEGER_BIN = BIN / "jaeger"
COLLECTOR_BIN = BIN / "otelcol-promptrecorder"
JAEGER_CONFIG = ROOT / "config" / "jaeger.yaml"
COLLECTOR_CONFIG = ROOT / "config" / "otel-collector.yaml"
LOOPBACK = "127.0.0.1"
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
    return port


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """(status, body) of a GET; HTTP errors are answers too, not exceptions."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@dataclass
class Backend:
    """One program run with one config file; `start()` waits until its health URL answers 200."""

    name: str
    binary: Path
    config: Path
    env: dict[str, str]
    health_url: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        assert self.process is None, f"{self.name} is already running"
        environment = {**os.environ, **self.env}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(self.binary), f"--config={self.config}"],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode} while starting; log:\n{self.log_tail()}"
                )
            try:
                status, _ = http_get(self.health_url, timeout=1.0)
            except OSError:
                status = 0
            if status == 200:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"{self.name} not healthy within {_START_TIMEOUT_S:.0f} s; log:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """SIGTERM (a graceful shutdown: the Collector drains its batch and queue), then SIGKILL."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=_STOP_TIMEOUT_S)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@dataclass
class Jaeger(Backend):
    otlp_grpc_port: int = 0
    query_url: str = ""

    def get_json(self, path: str) -> tuple[int, Any]:
        status, body = http_get(self.query_url + path, timeout=10.0)
        return status, json.loads(body) if body else None


@dataclass
class Collector(Backend):
    grpc_port: int = 0
    http_port: int = 0

    @property
    def grpc_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    def endpoint(self, protocol: str) -> str:
        return self.grpc_endpoint if protocol == "grpc" else self.http_endpoint


def make_jaeger(log_dir: Path) -> Jaeger:
    health, query, query_grpc = free_port(), free_port(), free_port()
    grpc_port, http_port = free_port(), free_port()
    env = {
        "PROMPTRECORDER_JAEGER_GRPC_ENDPOINT": f"{LOOPBACK}:{grpc_port}",
        "PROMPTRECORDER_JAEGER_HTTP_ENDPOINT": f"{LOOPBACK}:{http_port}",
        "PROMPTRECORDER_JAEGER_QUERY_HTTP_ENDPOINT": f"{LOOPBACK}:{query}",
        "PROMPTRECORDER_JAEGER_QUERY_GRPC_ENDPOINT": f"{LOOPBACK}:{query_grpc}",
        "PROMPTRECORDER_JAEGER_HEALTH_ENDPOINT": f"{LOOPBACK}:{health}",
        "PROMPTRECORDER_JAEGER_METRICS_LEVEL": "none",
        # A stock Jaeger's limit (gRPC's 4 MiB, not the file's 16): the Collector's exporter
        # must keep its requests below it (sending_queue.batch, sizer bytes, in the config).
        "PROMPTRECORDER_JAEGER_GRPC_MAX_RECV_MIB": "4",
        # Jaeger v2 traces its own queries (jaeger_query's enable_tracing defaults to true) with
        # the OTel SDK's defaults: OTLP to localhost:4317. In compose that is its own receiver;
        # here 4317 may be anyone's, so point it at its own receiver and sample nothing.
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{LOOPBACK}:{grpc_port}",
        "OTEL_TRACES_SAMPLER": "always_off",
    }
    jaeger = Jaeger(
        name="jaeger",
        binary=JAEGER_BIN,
        config=JAEGER_CONFIG,
        env=env,
        health_url=f"http://{LOOPBACK}:{health}/status",
        log_path=log_dir / "jaeger.log",
    )
    jaeger.otlp_grpc_port = grpc_port
    jaeger.query_url = f"http://{LOOPBACK}:{query}"
    return jaeger


# The limits a stock Collector keeps (its defaults): 4 MiB per gRPC message, 20 MiB per HTTP body.
STOCK_LIMITS: Mapping[str, str] = {
    "PROMPTRECORDER_COLLECTOR_GRPC_MAX_RECV_MIB": "4",
    "PROMPTRECORDER_COLLECTOR_HTTP_MAX_BODY_BYTES": str(20 * 1024 * 1024),
}


def make_collector(log_dir: Path, jaeger: Jaeger, name: str = "collector", **limits: str) -> Collector:
    """A Collector in front of `jaeger`; `limits` are PROMPTRECORDER_COLLECTOR_* variables."""
    grpc_port, http_port, health = free_port(), free_port(), free_port()
    env = {
        "PROMPTRECORDER_COLLECTOR_GRPC_ENDPOINT": f"{LOOPBACK}:{grpc_port}",
        "PROMPTRECORDER_COLLECTOR_HTTP_ENDPOINT": f"{LOOPBACK}:{http_port}",
        "PROMPTRECORDER_COLLECTOR_HEALTH_ENDPOINT": f"{LOOPBACK}:{health}",
        "PROMPTRECORDER_COLLECTOR_JAEGER_ENDPOINT": f"{LOOPBACK}:{jaeger.otlp_grpc_port}",
        "PROMPTRECORDER_COLLECTOR_METRICS_LEVEL": "none",
        **limits,
    }
    collector = Collector(
        name=name,
        binary=COLLECTOR_BIN,
        config=COLLECTOR_CONFIG,
        env=env,
        health_url=f"http://{LOOPBACK}:{health}/",
        log_path=log_dir / f"{name}.log",
    )
    collector.grpc_port, collector.http_port = grpc_port, http_port
    return collector
