"""The openai compatibility tier: opt-in, since it builds a venv per openai version."""

from __future__ import annotations

# The smoke module needs an httpx-based openai (1.x, 2.x); run_openai1.py runs it in a venv
# holding one. Under this venv's openai 3.x (httpx2) it has nothing to intercept.
collect_ignore = ["test_openai1_smoke.py"]
