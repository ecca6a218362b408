"""The openai compatibility tier: promptrecorder on the httpx-based openai (1.x and 2.x).

We claim ``openai>=1.40``: 1.x and 2.x are built on httpx, 3.x on httpx2. The default
venv holds the newest 3.x; this tests the oldest and the newest httpx-based openai, each in
a throwaway venv::

    python tests/compat/run_openai1.py                   # 1.40.0 and 2.54.0
    python tests/compat/run_openai1.py --openai 1.55.3   # any other version(s)
    python tests/compat/run_openai1.py --smoke-only      # skip the project's unit tests
    python tests/compat/run_openai1.py --keep            # keep the venvs to look around

For each version: ``python -m venv`` in a temporary directory; ``pip install`` the project
(not editable: a wheel built from the working tree, so the packaging is tested too), that
openai, and pytest; then, with warnings as errors, pytest runs there a copy of the
self-contained smoke module (``smoke``), and the project's own unit tests of the openai path
(``unit``: ``UNIT_TESTS``, in place, on their fake server, which speaks httpx under 1.x/2.x).
Each step is timed; the exit status is non-zero if any version fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SMOKE = Path(__file__).resolve().with_name("test_openai1_smoke.py")
# The oldest openai we claim, and the newest one built on httpx (3.x moved to httpx2).
DEFAULT_VERSIONS = ("1.40.0", "2.54.0")
# The project's unit tests of the openai path, run from the source tree against the venv's install.
UNIT_TESTS = (
    "tests/unit/llm/test_openai_calls.py",
    "tests/unit/llm/test_instrument.py",
    "tests/unit/llm/test_bots.py",
    "tests/unit/llm/test_openai_internals.py",
)

_PYTEST_INI = """\
[pytest]
addopts = --strict-markers --strict-config -ra -p no:cacheprovider
xfail_strict = true
filterwarnings =
    error
"""
_VENV_TIMEOUT_S = 120
_INSTALL_TIMEOUT_S = 600
_TEST_TIMEOUT_S = 300


@dataclass
class TierResult:
    """How one openai version fared: each step's seconds, and the output of the one that failed."""

    openai: str
    ok: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    output: str = ""

    def summary(self) -> str:
        steps = ", ".join(f"{step} {seconds:.1f}s" for step, seconds in self.seconds.items())
        return f"openai {self.openai}: {'passed' if self.ok else 'FAILED'} ({steps})"


def requirements(version: str) -> list[str]:
    """What a user of ``openai==version`` would have beside it."""
    wanted = [f"openai=={version}", "pytest>=8.0"]
    if _release(version) < (1, 55, 3):
        # Before 1.55.3 openai passes `proxies=` to httpx.Client, which httpx 0.28 removed:
        # `openai.OpenAI()` itself raises TypeError there.
        wanted.append("httpx<0.28")
    return wanted


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:3] if part.isdigit())


def _clean_env() -> dict[str, str]:
    # Nothing from this shell may leak in: no source tree on the path, no exporter settings,
    # no real API key or server.
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in drop and not key.startswith(("OTEL_", "OPENAI_", "PROMPTRECORDER_"))
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _step(result: TierResult, name: str, command: Sequence[str], cwd: Path, timeout: float) -> bool:
    started = time.monotonic()
    try:
        done = subprocess.run(
            list(command),
            cwd=cwd,
            env=_clean_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        failed = done.returncode != 0
        output = done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:
        failed = True
        # Even with text=True, what a timed-out run printed arrives as bytes.
        printed = b"".join(
            part if isinstance(part, bytes) else part.encode()
            for part in (expired.stdout, expired.stderr)
            if part
        )
        output = f"{name} did not finish within {timeout}s\n{printed.decode(errors='replace')}"
    result.seconds[name] = time.monotonic() - started
    if failed or name in ("smoke", "unit"):
        result.output += f"--- {name} ---\n{output}\n"
    return not failed


def run_version(
    version: str, workdir: Path, *, unit: bool = True, python: str = sys.executable
) -> TierResult:
    """Build a venv in ``workdir`` with ``openai==version``; run the smoke module and, with
    ``unit``, the project's openai unit tests there."""
    result = TierResult(version)
    venv = workdir / "venv"
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    shutil.copy(SMOKE, workdir / SMOKE.name)
    (workdir / "pytest.ini").write_text(_PYTEST_INI)
    python_bin = str(bin_dir / "python")
    install = [python_bin, "-m", "pip", "install", "-q", str(ROOT), *requirements(version)]
    if not (
        _step(result, "venv", [python, "-m", "venv", str(venv)], workdir, _VENV_TIMEOUT_S)
        and _step(result, "install", install, workdir, _INSTALL_TIMEOUT_S)
    ):
        return result
    smoke = [python_bin, "-m", "pytest", "-q", "-c", "pytest.ini", SMOKE.name]
    result.ok = _step(result, "smoke", smoke, workdir, _TEST_TIMEOUT_S)
    unit_tests = [path for path in UNIT_TESTS if (ROOT / path).is_file()]
    if unit and unit_tests:
        # In place, so that `tests.conftest` and the fake server import; `src/` is not on
        # the path, so `promptrecorder` is the venv's install.
        command = [python_bin, "-m", "pytest", "-q", "-p", "no:cacheprovider", *unit_tests]
        result.ok = _step(result, "unit", command, ROOT, _TEST_TIMEOUT_S) and result.ok
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--openai",
        action="append",
        metavar="VERSION",
        help=f"an openai version to test (repeatable; default {' and '.join(DEFAULT_VERSIONS)})",
    )
    parser.add_argument("--smoke-only", action="store_true", help="skip the project's unit tests")
    parser.add_argument("--keep", action="store_true", help="keep the venvs and print where they are")
    args = parser.parse_args(argv)
    versions = args.openai or list(DEFAULT_VERSIONS)

    started = time.monotonic()
    results = []
    for version in versions:
        workdir = Path(tempfile.mkdtemp(prefix=f"promptrecorder-openai-{version}-"))
        try:
            result = run_version(version, workdir, unit=not args.smoke_only)
        finally:
            if args.keep:
                print(f"kept {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
        results.append(result)
        print(result.summary(), flush=True)
        if not result.ok or args.keep:
            print(result.output, flush=True)
    print(f"openai compatibility tier: {time.monotonic() - started:.1f}s in all")
    return 0 if all(result.ok for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
