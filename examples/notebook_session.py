"""A notebook session with promptrecorder, written as a script (each `# %%` is a cell).

Run it as it is (no API key, no collector needed)::

    python examples/notebook_session.py

or open it in Jupyter / VS Code, which treat the `# %%` markers as cells. The "model" is a
small stand-in function, so that the example runs anywhere; replace ``stand_in_model`` with
your own call (openai, a local llama.cpp server, ...) and keep the ``autorecord`` line.

Nothing is exported unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set: a notebook needs no
collector, the records stay in memory. With the variable set (for example
``OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318`` and ``docker compose up``), the same
session also shows up in Jaeger as a trace.
"""

# %% Imports, and export only when a collector is configured
from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import promptrecorder
from promptrecorder import PromptRecorder, autorecord

if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
    promptrecorder.configure(service_name="notebook-example")


# %% A stand-in for a model: replace it with your own call
def stand_in_model(prompt: str, *, style: str = "plain") -> str:
    """Answer ``prompt`` from a tiny script, and record the pair like a real client would."""
    started = datetime.now(timezone.utc)
    time.sleep(0.005)  # a stand-in for the network
    if "child" in prompt:
        answer = "A rainbow is sunlight split into its colours by raindrops."
    elif "haiku" in prompt:
        answer = "Light bends in the rain / seven colours, one arc / the sun at my back"
    else:
        answer = (
            "Sunlight is refracted, reflected and dispersed inside raindrops, splitting it by wavelength."
        )
    autorecord(  # does nothing, at almost no cost, outside `with recorder:`
        prompt,
        answer,
        model="stand-in-1",
        started_at=started,
        ended_at=datetime.now(timezone.utc),
        input_tokens=len(prompt.split()),
        output_tokens=len(answer.split()),
        style=style,  # extra keyword arguments land in record.metadata
    )
    return answer


# %% An experiment: three prompt variants, and a nested recorder for a follow-up
def run_experiment() -> PromptRecorder:
    experiment = PromptRecorder("rainbow-prompts", attributes={"notebook": "examples/notebook_session.py"})
    with experiment:
        for style, prompt in [
            ("plain", "Explain rainbows briefly."),
            ("child", "Explain rainbows to a child."),
            ("haiku", "Write a haiku about rainbows."),
        ]:
            stand_in_model(prompt, style=style)
        with PromptRecorder("follow-up") as follow_up:  # a child span of the experiment
            stand_in_model("Explain rainbows briefly, again.", style="plain")
    print(f"follow-up recorded {len(follow_up)} pair; the experiment recorded {len(experiment)}")
    return experiment


# %% Look at the records: a list, llamabot's dicts, and a DataFrame when pandas is there
def show(experiment: PromptRecorder) -> None:
    for record in experiment.records:
        latency = f"{record.latency_s * 1000:.0f} ms" if record.latency_s is not None else "?"
        print(f"[{record.recorder}] {record.prompt!r} -> {record.response[:40]!r}... ({latency})")
    print(experiment.prompts_and_responses[0])
    try:
        frame = experiment.dataframe()
    except promptrecorder.MissingDependencyError as missing:
        print(f"(no DataFrame: {missing})")
    else:
        print(frame[["recorder", "prompt", "input_tokens", "output_tokens", "latency_s"]].to_string())


# %% Save the session, and read it back later (or look at it with `promptrecorder show FILE`)
def save_and_reload(experiment: PromptRecorder, path: Path) -> None:
    written = experiment.to_jsonl(path)
    again = PromptRecorder.from_jsonl(path)
    assert again.records == experiment.records  # the round trip is exact
    print(f"saved {written} records to {path}; `promptrecorder show {path}` prints them as a table")


# %% Run the cells in order
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=None, help="where to save the records (JSONL)")
    args = parser.parse_args()
    experiment = run_experiment()
    show(experiment)
    out = args.out or Path(tempfile.mkdtemp(prefix="promptrecorder-")) / "rainbow-prompts.jsonl"
    save_and_reload(experiment, out)
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        delivered = promptrecorder.flush(timeout=5)
        print(f"trace {experiment.records[0].trace_id}: {'delivered' if delivered else 'NOT delivered'}")


if __name__ == "__main__":
    main()
