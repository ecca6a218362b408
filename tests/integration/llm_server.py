"""A real OpenAI-compatible HTTP server on 127.0.0.1 for integration tests: fakellm.

fakellm (PyPI; a FastAPI app written by a third party, not by us) serves
``POST /v1/chat/completions``, whole and streamed, answering by YAML rules: the first rule
whose ``when`` matches the request decides the reply (fixed text, tool calls, or an HTTP
error), and a request no rule matches gets a deterministic echo. ``FakeLLMServer`` runs it
under uvicorn in a child process, on a socket bound here to ``127.0.0.1:0`` and handed
over by file descriptor (``uvicorn --fd``): no free-port race, nothing bound beyond
loopback. pytest-fakellm's launcher is not used: it picks its port by bind-and-release and
pipes the server's output without reading it.

What fakellm 0.3.5 does, read from its source and checked against openai 3.x:

- a whole reply has ``model`` = the requested model, ``finish_reason`` ``stop`` (or
  ``tool_calls``) and ``usage`` (tokens ~ len/4 without tiktoken);
- a stream is a role chunk, one chunk per word (10 ms apart), a finish chunk and
  ``[DONE]``; it never sends a usage chunk, whatever ``stream_options`` says;
- an error rule (``status`` >= 400) applies to whole replies only: a streamed request
  matching one streams the echo instead.

Example::

    with FakeLLMServer(tmp_path) as server:
        client = server.openai_client()
        reply = client.chat.completions.create(model="m", messages=[...])

Threading: a server may be shared by any number of tests, threads and clients; it keeps
only request counts, which ``request_count`` reads.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import openai

__all__ = [
    "ANSWER",
    "CAPITAL_QUESTION",
    "FOLLOW_UP",
    "FOLLOW_UP_ANSWER",
    "INTERNAL_ERROR",
    "RATE_LIMIT",
    "RULES",
    "TOOL_ARGUMENTS",
    "TOOL_NAME",
    "TOOL_TRIGGER",
    "FakeLLMServer",
]

LOOPBACK = "127.0.0.1"

# Scripted replies. A prompt containing a trigger gets that reply; rules are tried in order.
RATE_LIMIT = "[[429]]"
INTERNAL_ERROR = "[[500]]"
TOOL_TRIGGER = "[[weather]]"
TOOL_NAME = "get_weather"
TOOL_ARGUMENTS = {"city": "Paris"}
CAPITAL_QUESTION = "What is the capital of France?"
ANSWER = "The capital of France is Paris."
# The second turn of a conversation: its history still holds the first question, so
# its rule comes first.
FOLLOW_UP = "And the capital of Italy?"
FOLLOW_UP_ANSWER = "The capital of Italy is Rome."

RULES: tuple[Mapping[str, Any], ...] = (
    {
        "name": "rate_limited",
        "when": {"messages_contain": RATE_LIMIT},
        "respond": {"status": 429, "error": "Rate limit exceeded (scripted)"},
    },
    {
        "name": "server_error",
        "when": {"messages_contain": INTERNAL_ERROR},
        "respond": {"status": 500, "error": "The server had an error (scripted)"},
    },
    {
        "name": "weather_tool",
        "when": {"messages_contain": TOOL_TRIGGER},
        "respond": {"tool_calls": [{"name": TOOL_NAME, "arguments": TOOL_ARGUMENTS}]},
    },
    {"name": "follow_up", "when": {"messages_contain": FOLLOW_UP}, "respond": {"content": FOLLOW_UP_ANSWER}},
    {"name": "capital", "when": {"messages_contain": CAPITAL_QUESTION}, "respond": {"content": ANSWER}},
)

_STARTUP_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 5.0


class FakeLLMServer:
    """fakellm served by uvicorn in a child process on 127.0.0.1:<OS-chosen port>.

    Args:
        workdir: a directory for the rules file and the server's log.
        rules: fakellm rules (the YAML ``rules:`` list, as Python data).

    Raises:
        RuntimeError: from ``start()``, when the server exits or is not answering
            within 15 s (the message carries its log).
    """

    def __init__(self, workdir: Path, rules: Sequence[Mapping[str, Any]] = RULES) -> None:
        self.workdir = Path(workdir)
        self.rules = tuple(rules)
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeLLMServer is not started")
        return self._port

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def base_url(self) -> str:
        """What an openai client takes as ``base_url`` (with the ``/v1``)."""
        return f"{self.url}/v1"

    @property
    def log_path(self) -> Path:
        return self.workdir / "fakellm.log"

    def openai_client(self, **kwargs: Any) -> openai.OpenAI:
        """A sync client for this server; no retries unless ``max_retries`` says so."""
        return openai.OpenAI(**self._client_options(kwargs))

    def async_openai_client(self, **kwargs: Any) -> openai.AsyncOpenAI:
        """An async client for this server; no retries unless ``max_retries`` says so."""
        return openai.AsyncOpenAI(**self._client_options(kwargs))

    def _client_options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {"base_url": self.base_url, "api_key": "test", "max_retries": 0, "timeout": 10.0, **kwargs}

    # --- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError("FakeLLMServer is already started")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "fakellm.yaml"
        # fakellm reads YAML, of which JSON is a subset.
        config.write_text(json.dumps({"version": 1, "rules": [dict(rule) for rule in self.rules]}))
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind((LOOPBACK, 0))
            listener.listen(128)
            self._port = listener.getsockname()[1]
            with self.log_path.open("wb") as log:
                self._process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "fakellm.server:app",
                        "--fd",
                        str(listener.fileno()),
                        "--log-level",
                        "warning",
                        "--no-access-log",
                    ],
                    cwd=self.workdir,
                    env={**os.environ, "FAKELLM_CONFIG": str(config)},
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(listener.fileno(),),
                )
        finally:
            # The child holds its own copy of the socket now.
            listener.close()
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"fakellm exited during start-up (code {self._process.returncode}):\n{self._log()}"
                )
            try:
                self.stats(timeout=1.0)
                return
            except (OSError, ValueError):
                # The socket listens from the start, so this is the app still importing.
                if time.monotonic() >= deadline:
                    raise RuntimeError(
                        f"fakellm did not answer within {_STARTUP_TIMEOUT_S}s at {self.url}:\n{self._log()}"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and reap it. Safe to call twice."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(_STOP_TIMEOUT_S)

    def __enter__(self) -> FakeLLMServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- what the server saw ------------------------------------------------------

    def stats(self, timeout: float = 5.0) -> dict[str, Any]:
        """fakellm's ``/_fakellm/stats``: total requests, matches by rule, recent requests."""
        with urllib.request.urlopen(f"{self.url}/_fakellm/stats", timeout=timeout) as reply:
            stats: dict[str, Any] = json.load(reply)
        return stats

    @property
    def request_count(self) -> int:
        """How many chat requests the server has answered since it started."""
        count: int = self.stats()["total_requests"]
        return count

    def _log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"
