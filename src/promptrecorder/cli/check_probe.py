"""The probe of ``promptrecorder check``: a TCP connection, and for https a TLS handshake.

It tells a refused connection, an unknown host, a silent network and a TLS mismatch apart
in well under a second, where the exporter would retry until its timeout and then say
"failed". ``promptrecorder.cli.check`` runs it before sending the test span, and asks it again
(plain TLS handshake, CA file) to explain what the export ran into.
"""

from __future__ import annotations

import socket
import ssl
import urllib.request
from typing import TYPE_CHECKING

from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_CERTIFICATE,
    OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE,
)

from promptrecorder import settings
from promptrecorder.cli.check_outcome import Outcome, Problem
from promptrecorder.export.otlp_send_http import PLAIN_TEXT_REPLIES

if TYPE_CHECKING:
    from promptrecorder.cli.check import Target


def probe(target: Target) -> Outcome | None:
    """A failure found by connecting (and for https, shaking hands); None when it went well."""
    if _behind_proxy(target):
        return None  # the exporter talks to the proxy, not to the endpoint: let it tell
    try:
        sock = socket.create_connection((target.host, target.port), timeout=target.timeout)
    except socket.gaierror as error:
        return Outcome(Problem.UNRESOLVED, str(error.strerror or error))
    except ConnectionRefusedError:
        return Outcome(Problem.REFUSED, "connection refused")
    except TimeoutError:
        return Outcome(Problem.TIMEOUT, f"no answer to a TCP connection within {target.timeout:g} s")
    except OSError as error:
        return Outcome(Problem.UNREACHABLE, str(error.strerror or error))
    with sock:
        if target.scheme != "https":
            return None
        return _handshake(sock, target)


def _handshake(sock: socket.socket, target: Target) -> Outcome | None:
    context = _tls_context(target)
    try:
        with context.wrap_socket(sock, server_hostname=target.host):
            return None
    except ssl.SSLCertVerificationError as error:
        return Outcome(Problem.TLS_UNTRUSTED, str(error.verify_message or error.reason or error))
    except ssl.SSLError as error:
        if error.reason in PLAIN_TEXT_REPLIES:
            return Outcome(Problem.TLS_NOT_SPOKEN, f"the TLS library says {error.reason!s}")
        return Outcome(Problem.TLS_FAILED, str(error.reason or error))
    except TimeoutError:
        return Outcome(
            Problem.TLS_FAILED,
            f"no answer to the TLS handshake within {target.timeout:g} s; the server may not speak TLS",
        )
    except OSError as error:
        return Outcome(Problem.TLS_FAILED, str(error.strerror or error))


def _ca_file() -> str | None:
    """The CA file the exporters are told to trust: the traces variable, then the general one."""
    return settings.env(OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE) or settings.env(OTEL_EXPORTER_OTLP_CERTIFICATE)


def _tls_context(target: Target) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=_ca_file())
    if target.protocol == "grpc":
        context.set_alpn_protocols(["h2"])
    return context


def completes_tls_handshake(target: Target) -> bool:
    """Whether the endpoint speaks TLS (certificate not checked): was https:// meant?"""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((target.host, target.port), timeout=target.timeout) as sock,
            context.wrap_socket(sock, server_hostname=target.host),
        ):
            return True
    except OSError:
        return False


def _behind_proxy(target: Target) -> bool:
    if urllib.request.proxy_bypass(target.host):
        return False
    proxies = urllib.request.getproxies()
    names = ("grpc", "https", "all") if target.protocol == "grpc" else (target.scheme, "all")
    return any(proxies.get(name) for name in names)
