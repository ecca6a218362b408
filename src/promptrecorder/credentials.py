"""Masking credentials before a URL or a header reaches a log line, an error or the terminal.

Collector endpoints may carry a password (``https://user:secret@host:4318``) and export
headers usually carry a token (``authorization=Bearer ...``). Whatever we print about the
destination goes through here first.

Example::

    >>> mask_url("http://u:PW@collector:4318/v1/traces")
    'http://u:***@collector:4318/v1/traces'
    >>> describe_headers({"authorization": "Bearer abc"})
    "{'authorization': '***'}"
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MASK = "***"


def mask_url(url: object) -> str:
    """``url`` as text with any password (and a user name given alone) replaced by ``***``.

    Never raises: a value that is not a parseable URL is masked from its last ``@`` back to
    the scheme, so that a malformed endpoint with credentials is not echoed either.
    """
    text = url if isinstance(url, str) else repr(url)
    if "@" not in text:
        return text
    try:
        parts = urlsplit(text)
        netloc = parts.netloc
    except ValueError:
        netloc = ""
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        masked = f"{user}:{MASK}" if has_password else MASK
        return urlunsplit(parts._replace(netloc=f"{masked}@{hostport}"))
    # Not a URL we can parse (a bad port, say): hide everything before the last '@'.
    scheme, sep, rest = text.partition("://")
    if not sep:
        return f"{MASK}@{text.rpartition('@')[2]}"
    return f"{scheme}://{MASK}@{rest.rpartition('@')[2]}"


def describe_headers(headers: object) -> str:
    """A header mapping for a message: the names, each value masked (values are usually tokens)."""
    if isinstance(headers, dict):
        return "{" + ", ".join(f"{key!r}: '{MASK}'" for key in headers) + "}"
    return MASK
