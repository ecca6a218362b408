"""What the opt-in backend tiers (tests/phoenix, tests/mlflow) share: skipping unless opted in,
a free loopback port, waiting (bounded) for a server's health URL, and stopping it.

Each tier's conftest.py keeps only what is its own: the command, the environment and the
health path of its backend.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0


def opt_in_tier(folder: Path, opt_in: str, reason: str) -> Callable[[pytest.Config, list[pytest.Item]], None]:
    """A ``pytest_collection_modifyitems`` hook for a tier's conftest.py: its tests skipped,
    with ``reason``, unless ``opt_in=1`` is set. Assign it to that name in the conftest."""

    def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
        skip_unless_opted_in(items, folder, opt_in, reason)

    return pytest_collection_modifyitems


def skip_unless_opted_in(items: list[pytest.Item], folder: Path, opt_in: str, reason: str) -> None:
    """Mark every test under ``folder`` skipped, with ``reason``, unless ``opt_in=1`` is set."""
    if os.environ.get(opt_in) == "1":
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if item.path.is_relative_to(folder):
            item.add_marker(skip)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_until_healthy(name: str, health_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``health_url`` until it answers 200; fail with the log's tail if the process dies or
    ``START_TIMEOUT_S`` passes."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _healthy(health_url):
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:]
            pytest.fail(f"{name} did not become healthy within {START_TIMEOUT_S:.0f} s:\n{tail}")
        time.sleep(0.5)


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server started with ``start_new_session=True`` as a group (it may fork
    workers), then kill it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
            return
        except subprocess.TimeoutExpired:
            continue
