"""Create bench/.venvs/peers: the peers' openai instrumentations, beside (not in) our .venv.

Every instrumentation patches openai globally and brings its own dependencies, so they are
kept out of the project's environment. This venv gets the pinned peers of
``requirements.txt`` plus exactly the openai, httpx2, pydantic and opentelemetry versions
the project's own venv has, so that the only difference between two rows of the benchmark
is the instrumentation. Idempotent: a venv whose stamp matches is left alone.

Run from the repository root (``bench/run_all.py`` runs it when the venv is missing)::

    .venv/bin/python bench/peers/setup_venv.py            # ~1 min the first time
    .venv/bin/python bench/peers/setup_venv.py --force    # rebuild
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENV = HERE.parent / ".venvs" / "peers"
REQUIREMENTS = HERE / "requirements.txt"
# Shared with the project's venv, at the project venv's versions.
MATCHED = ("openai", "httpx2", "pydantic", "pydantic-core", "opentelemetry-api", "opentelemetry-sdk")
_STAMP = VENV / "promptrecorder-bench-stamp.json"


def venv_python(venv: Path = VENV) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def wanted() -> dict[str, Any]:
    """What the venv must hold: the requirement file's hash and the matched versions."""
    matched: dict[str, str] = {}
    for name in MATCHED:
        try:
            matched[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "requirements_sha256": hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest(),
        "matched": matched,
    }


def is_ready() -> bool:
    try:
        return bool(json.loads(_STAMP.read_text()) == wanted()) and venv_python().exists()
    except (OSError, ValueError):
        return False


def ensure(force: bool = False, quiet: bool = False) -> Path:
    """Create or update the peers' venv; return its python."""
    if not force and is_ready():
        return venv_python()
    if force and VENV.exists():
        shutil.rmtree(VENV)
    want = wanted()
    say = (lambda *_: None) if quiet else print
    say(f"setting up the peers' venv in {VENV} (about a minute)...", flush=True)
    if not venv_python().exists():
        # The interpreter the project's venv was made from, so both run the same Python.
        base = getattr(sys, "_base_executable", None) or sys.executable
        subprocess.run([base, "-m", "venv", str(VENV)], check=True)
    pins = [f"{name}=={version}" for name, version in want["matched"].items()]
    command = [str(venv_python()), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*command, "-r", str(REQUIREMENTS), *pins], check=True)
    _STAMP.write_text(json.dumps(want, indent=2) + "\n")
    say("peers' venv ready.", flush=True)
    return venv_python()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--force", action="store_true", help="delete and rebuild the venv")
    args = parser.parse_args(argv)
    print(ensure(force=args.force))
    return 0


if __name__ == "__main__":
    sys.exit(main())
