"""The OpenTelemetry floor tier: the unit suite on the oldest OpenTelemetry we claim.

pyproject.toml says ``opentelemetry-api/-sdk/-exporter-otlp >= FLOOR``. This builds a
throwaway venv holding exactly that release of the three, installs the project (a wheel
built from the working tree) and the test dependencies, and runs ``tests/unit`` there, in
place, with warnings as errors::

    python tests/compat/run_otel_floor.py                 # the floor (FLOOR below)
    python tests/compat/run_otel_floor.py --otel 1.40.0   # any other release, to probe

About 2 minutes with pip's cache warm (most of it the unit suite).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .run_openai1 import _INSTALL_TIMEOUT_S, _VENV_TIMEOUT_S, ROOT, TierResult, _step

# The oldest release whose public API the package needs and the suite passes on (issue 13):
# 1.27 lacks the histogram bucket advice the call metrics use; 1.30-1.40 differ from the
# newest stock OTLP encoder's bytes in the tests that compare ours with it, and 1.42 warns
# (DeprecationWarning, an error in the suite) from its own entry-point loading.
FLOOR = "1.43.0"
_UNIT_TIMEOUT_S = 420
# What the unit suite imports beside the project (the dev extra without the linters).
_TEST_REQUIREMENTS = ("pytest>=8.0", "hypothesis>=6.100", "pandas>=2.0", "PyYAML>=6.0", "compose-spec>=0.2")


def requirements(version: str) -> list[str]:
    """The three OpenTelemetry distributions at ``version``, and the test dependencies."""
    otel = [f"opentelemetry-{name}=={version}" for name in ("api", "sdk", "exporter-otlp")]
    return [*otel, *_TEST_REQUIREMENTS, "fakellm>=0.3.5,<0.4", "trustme>=1.1"]


def run_version(version: str, workdir: Path, *, python: str = sys.executable) -> TierResult:
    """Build a venv in ``workdir`` with OpenTelemetry ``version``; run tests/unit there."""
    result = TierResult(f"opentelemetry {version}")
    python_bin = str(workdir / "venv" / "bin" / "python")
    install = [python_bin, "-m", "pip", "install", "-q", str(ROOT), *requirements(version)]
    if not (
        _step(result, "venv", [python, "-m", "venv", str(workdir / "venv")], workdir, _VENV_TIMEOUT_S)
        and _step(result, "install", install, workdir, _INSTALL_TIMEOUT_S)
    ):
        return result
    # In place, so that `tests.conftest` and the fakes import; `src/` is not on the path,
    # so `promptrecorder` is the venv's install.
    command = [python_bin, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "tests/unit"]
    result.ok = _step(result, "unit", command, ROOT, _UNIT_TIMEOUT_S)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--otel", action="append", help=f"a release to test (default {FLOOR}); repeatable")
    args = parser.parse_args(argv)
    failed = False
    for version in args.otel or [FLOOR]:
        with tempfile.TemporaryDirectory(prefix="promptrecorder-otel-") as workdir:
            result = run_version(version, Path(workdir))
        print(result.summary())
        if not result.ok:
            print(result.output[-4000:])
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
