"""The trace-view tier: the OTLP/HTTP viewer of the ``trace-view`` package (PyPI), for real.

Opt in with ``PROMPTRECORDER_TRACEVIEW=1`` in an environment with ``trace-view`` installed
(``.ci/run-traceview`` makes one) on a machine where ``unshare -n`` works (root, or user
namespaces): trace-view binds 0.0.0.0, so it runs in a network namespace of its own
(``in_private_network.py``). Without the variable every test here is skipped, with that reason.
"""

from __future__ import annotations

from pathlib import Path

from tests.opt_in_servers import opt_in_tier

_HERE = Path(__file__).parent
OPT_IN = "PROMPTRECORDER_TRACEVIEW"


pytest_collection_modifyitems = opt_in_tier(
    _HERE,
    OPT_IN,
    f"the trace-view tier is opt-in: set {OPT_IN}=1 where trace-view is installed and unshare -n works",
)
