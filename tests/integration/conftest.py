"""Fixtures for tests that export to real OTLP receivers (and call a real LLM server) on 127.0.0.1.

Each fixture starts a fresh receiver for one test and stops it (joining its threads)
afterwards. Every test collected under ``tests/integration`` gets the ``integration`` marker.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .llm_server import FakeLLMServer
from .receivers import FailingHttpReceiver, GrpcReceiver, HttpReceiver, Receiver

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A conftest hook sees every collected item, not only its own directory's.
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def grpc_receiver() -> Iterator[GrpcReceiver]:
    """A started OTLP/gRPC receiver; ``.endpoint`` is ``http://127.0.0.1:PORT``."""
    with GrpcReceiver() as receiver:
        yield receiver


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    """A started OTLP/HTTP receiver; export to ``.traces_endpoint``."""
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture(params=["grpc", "http/protobuf"], ids=["grpc", "http"])
def otlp_receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    """A started receiver, once per OTLP protocol; ``.protocol`` says which."""
    receiver: Receiver = GrpcReceiver() if request.param == "grpc" else HttpReceiver()
    with receiver:
        yield receiver


@pytest.fixture
def failing_http_receiver(request: pytest.FixtureRequest) -> Iterator[FailingHttpReceiver]:
    """A started OTLP/HTTP endpoint failing every export, 500 by default.

    Override with indirect parametrisation, e.g.
    ``@pytest.mark.parametrize("failing_http_receiver", [{"status": 503, "retry_after": "0"}],
    indirect=True)``.
    """
    options: dict[str, Any] = getattr(request, "param", {})
    with FailingHttpReceiver(**options) as receiver:
        yield receiver


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeLLMServer]:
    """fakellm, a real OpenAI-compatible server, on 127.0.0.1 for the whole session.

    It answers by ``llm_server.RULES`` and keeps no state a test could leak into another;
    ``.openai_client()`` / ``.async_openai_client()`` give clients without retries.
    """
    with FakeLLMServer(tmp_path_factory.mktemp("fakellm")) as server:
        yield server
