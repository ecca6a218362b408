"""Every reach into openai's private attributes, in one place, each with why there is no public seam.

openai offers no public way to learn these; each reach falls back to a safe answer when the
attribute is missing, and the openai compatibility tier (tests/compat/run_openai1.py) runs
the tests that exercise them on openai 1.x, beside 3.x in the main suite.

- ``resource_client``: a resource (``client.chat.completions``) keeps its client in
  ``_client``; the class-wide patch sees only the resource.
- ``client_base_url``: ``base_url`` is public, but openai 3.x's property imports a module on
  every read (~0.9 µs a call); every version keeps the value in ``_base_url``.
- ``raw_response_is_read``: a ``LegacyAPIResponse`` (``with_raw_response``) says whether it
  streams only in ``_stream``.
- ``client_copy_settings``: the headers and query a client was *given* are ``_custom_headers``
  and ``_custom_query`` (the public ``default_headers`` adds auth); a client built with an
  api-key provider (``_api_key_provider``) cannot be copied.
- ``http_library``: openai 3.x runs on ``httpx2``, 1.x/2.x on ``httpx``; which one this openai
  imported is known only from ``openai._base_client``.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


def resource_client(resource: object) -> object:
    """The client a resource (``client.chat.completions``) belongs to, or None."""
    return getattr(resource, "_client", None)


def client_base_url(client: object) -> object:
    """The client's base URL, read without the cost of openai 3.x's property."""
    base_url = getattr(client, "_base_url", None)
    return getattr(client, "base_url", "") if base_url is None else base_url


def raw_response_is_read(reply: object) -> bool:
    """True for a ``with_raw_response`` reply that is not a stream (its body is read)."""
    return not getattr(reply, "_stream", True)


def given_headers_and_query(client: object) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The headers and query ``client`` was built with (not the auth headers openai adds)."""
    headers = dict(getattr(client, "_custom_headers", None) or {}) or None
    query = dict(getattr(client, "_custom_query", None) or {}) or None
    return headers, query


def has_api_key_provider(client: object) -> bool:
    """True when ``client`` gets its key from a provider callable (its settings cannot be copied)."""
    return bool(getattr(client, "_api_key_provider", None))


def http_library(openai: ModuleType) -> ModuleType:
    """The HTTP library (``httpx2`` or ``httpx``) this openai is built on."""
    from openai import _base_client  # where openai imports its HTTP library

    for name in ("httpx2", "httpx"):
        module = getattr(_base_client, name, None)
        if isinstance(module, ModuleType):
            return module
    major = int(openai.__version__.split(".")[0])
    return importlib.import_module("httpx2" if major >= 3 else "httpx")
