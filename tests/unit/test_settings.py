"""Tests of ``promptrecorder.settings``: the environment table and how variables are read."""

from __future__ import annotations

import pytest

from promptrecorder import settings

NAME = "PROMPTRECORDER_TEST_SETTING"


@pytest.mark.parametrize(
    ("raw", "expected"), [("value", "value"), ("  padded\t\n", "padded"), ("a b", "a b")]
)
def test_env_returns_the_stripped_value(monkeypatch: pytest.MonkeyPatch, raw: str, expected: str) -> None:
    """env() returns the variable's value with surrounding whitespace stripped."""
    monkeypatch.setenv(NAME, raw)
    assert settings.env(NAME) == expected


@pytest.mark.parametrize("raw", ["", " ", "\t\n  "])
def test_env_treats_blank_as_unset(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    """env() returns None for an empty or whitespace-only variable."""
    monkeypatch.setenv(NAME, raw)
    assert settings.env(NAME) is None


def test_env_of_an_unset_variable_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """env() returns None for a variable that is not set."""
    monkeypatch.delenv(NAME, raising=False)
    assert settings.env(NAME) is None


@pytest.mark.parametrize("raw", ["true", "TRUE", "True", "  true \n"])
def test_env_flag_is_true_only_for_true(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    """env_flag() is True for 'true' in any case, surrounding whitespace ignored."""
    monkeypatch.setenv(NAME, raw)
    assert settings.env_flag(NAME) is True


@pytest.mark.parametrize("raw", ["false", "1", "yes", "on", "truthy", "", "  "])
def test_env_flag_is_false_otherwise(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    """env_flag() is False for anything but 'true', as the OpenTelemetry spec reads booleans."""
    monkeypatch.setenv(NAME, raw)
    assert settings.env_flag(NAME) is False


def test_env_flag_of_an_unset_variable_is_false(monkeypatch: pytest.MonkeyPatch) -> None:
    """env_flag() is False for a variable that is not set."""
    monkeypatch.delenv(NAME, raising=False)
    assert settings.env_flag(NAME) is False


def test_every_variable_is_opentelemetrys_openais_or_ours() -> None:
    """Every name in ENVIRONMENT is a standard OTEL_ one, one the openai client reads, or ours."""
    assert settings.ENVIRONMENT
    for name in settings.ENVIRONMENT:
        assert name.startswith(("OTEL_", "OPENAI_", "PROMPTRECORDER_")), name


def test_the_readme_documents_every_variable() -> None:
    """The README's configuration reference names each variable the code reads, with its default."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    reference = readme.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    for name, (default, _) in settings.ENVIRONMENT.items():
        assert f"`{name}`" in reference, name
        if default is not None:
            row = next(line for line in reference.splitlines() if f"`{name}`" in line)
            assert f"`{default}`" in row or default in row, (name, default)


def test_every_variable_is_a_constant_of_its_own_name() -> None:
    """Each table entry has a module constant spelled as the variable, and each default is text or None."""
    for name, (default, description) in settings.ENVIRONMENT.items():
        assert getattr(settings, name) == name
        assert default is None or isinstance(default, str)
        assert description.strip()


def test_table_defaults_agree_with_the_constants() -> None:
    """The table's protocol and exporter defaults are among the accepted values."""
    protocol_default = settings.ENVIRONMENT[settings.OTEL_EXPORTER_OTLP_PROTOCOL][0]
    assert protocol_default == settings.DEFAULT_PROTOCOL
    assert protocol_default in settings.PROTOCOLS
    assert settings.ENVIRONMENT[settings.OTEL_TRACES_EXPORTER][0] in settings.EXPORTERS
