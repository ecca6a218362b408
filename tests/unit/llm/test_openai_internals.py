"""Each reach into openai's private attributes still finds what it looks for on this openai.

The openai compatibility tier runs this file on openai 1.x and 2.x as well (tests/compat).
"""

from __future__ import annotations

from types import ModuleType

import openai

from promptrecorder.llm import openai_internals
from tests.fake_openai import FakeOpenAI, completion


def test_a_resource_leads_to_its_client_and_the_clients_base_url() -> None:
    client = openai.OpenAI(api_key="sk-test", base_url="http://llm.example:8080/v1")
    assert openai_internals.resource_client(client.chat.completions) is client
    assert str(openai_internals.client_base_url(client)) == str(client.base_url)
    assert openai_internals.resource_client(object()) is None


def test_the_headers_and_query_a_client_was_given_not_its_auth() -> None:
    client = openai.OpenAI(api_key="sk-test", default_headers={"x-team": "a"}, default_query={"v": "1"})
    assert openai_internals.given_headers_and_query(client) == ({"x-team": "a"}, {"v": "1"})
    assert openai_internals.given_headers_and_query(openai.OpenAI(api_key="sk-test")) == (None, None)
    assert not openai_internals.has_api_key_provider(client)


def test_a_raw_response_that_is_not_a_stream_is_read() -> None:
    client = FakeOpenAI(completion("hi")).client(api_key="sk-test")
    raw = client.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "hello"}]
    )
    assert openai_internals.raw_response_is_read(raw)
    assert not openai_internals.raw_response_is_read(object())


def test_the_http_library_is_the_one_openai_imported() -> None:
    library = openai_internals.http_library(openai)
    assert isinstance(library, ModuleType)
    assert library.__name__ == ("httpx2" if int(openai.__version__.split(".")[0]) >= 3 else "httpx")
