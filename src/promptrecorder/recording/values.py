"""Caller values on their way to a record and a span: checked once, then made the same in both.

Metadata and a recorder's attributes can hold anything a caller passes. Whatever is kept
in memory must also reach the export, and no value may be able to fail an export batch,
so each value is settled at the call, for both places alike:

- ``str``, ``int``, ``float`` (NaN and infinities too), ``bool`` and ``None`` are kept as
  they are (an int beyond OTLP's 64 bits is exported as its decimal text);
- lists, tuples and dicts with ``str`` keys, nested at most ``MAX_DEPTH`` levels, are kept
  (as lists and dicts) and exported as JSON text;
- any other object is kept and exported as its ``str()``;
- refused with a ``TypeError``/``ValueError`` naming the argument: ``bytes`` (decode them
  first), a container that holds itself, nesting deeper than ``MAX_DEPTH``, a dict key
  that is not a ``str``, an object whose ``str()`` raises, a key longer than
  ``MAX_KEY_LENGTH`` or holding a lone surrogate.

Then the recorder's content policy (secret scrubbing and the ``redact`` hook) passes over
every text in them, once, in ``apply_policy``: the record and the span get its result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from promptrecorder.recording.content import MAX_NAME_LENGTH
from promptrecorder.recording.redaction import ContentPolicy, RedactionCounter

# Deeper than this is a mistake (or an attack); JSON's encoder itself stops near 1,000.
MAX_DEPTH = 64
# An attribute key is shown on every line of a trace view.
MAX_KEY_LENGTH = MAX_NAME_LENGTH

_NATIVE = (str, bool, int, float)


def check_key(argument: str, key: object, *, empty: bool = True) -> str:
    """``key`` if it may name an exported attribute, else a ``TypeError``/``ValueError``."""
    if not isinstance(key, str) or (not empty and not key):
        rule = "str" if empty else "non-empty str"
        raise TypeError(f"`{argument}` keys must be {rule}, got {_describe(key)}")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(
            f"`{argument}` keys must be at most {MAX_KEY_LENGTH} characters, got one of {len(key)}"
        )
    if not key.isascii():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                f"`{argument}` keys must be valid Unicode text (no lone surrogates), got {key!r}"
            ) from None
    return key


def settle(name: str, value: object) -> Any:
    """``value`` as it is kept and exported (see the module docstring), or a
    ``TypeError``/``ValueError`` naming ``name`` (such as ``metadata['user']``)."""
    if value is None or isinstance(value, _NATIVE):
        return value
    return _settle(name, value, 0, set())


def _settle(name: str, value: object, depth: int, open_ids: set[int]) -> Any:
    if value is None or isinstance(value, _NATIVE):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(
            f"`{name}` must be text, not {type(value).__name__}: decode it first "
            "(for example `value.decode('utf-8', 'replace')`)"
        )
    if isinstance(value, (list, tuple, Mapping)):
        if depth >= MAX_DEPTH:
            raise ValueError(f"`{name}` must be nested at most {MAX_DEPTH} levels deep, got deeper")
        if id(value) in open_ids:
            raise ValueError(f"`{name}` must not contain itself, got a {type(value).__name__} that does")
        open_ids.add(id(value))
        try:
            if isinstance(value, Mapping):
                settled: Any = {}
                for key, item in value.items():
                    if not isinstance(key, str):
                        raise TypeError(f"`{name}` keys must be str, got {_describe(key)}")
                    settled[key] = _settle(name, item, depth + 1, open_ids)
                return settled
            return [_settle(name, item, depth + 1, open_ids) for item in value]
        finally:
            open_ids.discard(id(value))
    try:
        text = str(value)
    except Exception as error:
        raise TypeError(
            f"`{name}` must be a value that str() can show, got a {type(value).__name__} "
            f"whose str() raised {type(error).__name__}"
        ) from None
    if not isinstance(text, str):  # a __str__ returning something else: str() raised above
        raise TypeError(f"`{name}` must be a value that str() can show, got {type(value).__name__}")
    return text


def apply_policy(policy: ContentPolicy, value: Any, counter: RedactionCounter) -> Any:
    """A settled ``value`` with every text in it (not the dict keys) passed through ``policy``."""
    if isinstance(value, str):
        return policy.text(value, counter)
    if isinstance(value, list):
        return [apply_policy(policy, item, counter) for item in value]
    if isinstance(value, dict):
        return {key: apply_policy(policy, item, counter) for key, item in value.items()}
    return value


def _describe(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."
