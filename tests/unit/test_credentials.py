"""Credentials never reach a message: URLs lose their password, headers their values."""

from __future__ import annotations

import pytest

from promptrecorder.credentials import describe_headers, mask_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://u:PW@host:4318", "http://u:***@host:4318"),
        ("https://token@host/v1/traces", "https://***@host/v1/traces"),
        ("http://host:4317", "http://host:4317"),
        ("http://u:PW@h:99999", "http://u:***@h:99999"),
        ("grpc://a:b@c@host:1", "grpc://a:***@host:1"),
    ],
)
def test_mask_url_hides_the_userinfo_password(url: str, expected: str) -> None:
    assert mask_url(url) == expected
    assert "PW" not in mask_url(url)


def test_mask_url_hides_credentials_of_an_unparseable_url() -> None:
    """A port urlsplit refuses still loses what stands before the '@'."""
    masked = mask_url("http://u:PW@[bad:4318")
    assert "PW" not in masked
    assert masked.endswith("@[bad:4318")


def test_describe_headers_names_keys_and_masks_values() -> None:
    text = describe_headers({"authorization": "Bearer T0KEN"})
    assert "authorization" in text
    assert "T0KEN" not in text
