"""The evaluator micro-benchmarks (criterion, ``evaluator/benches/evaluate.rs``), pinned to one
core, read back from criterion's ``estimates.json`` as median nanoseconds."""

from __future__ import annotations

import json
import subprocess

from bench.processes import REPO, pinned
from bench.stack import LOAD_CPU

CRITERION = REPO / "target" / "criterion"
BENCHES = {
    "w2_350_flags_nested_context_to_json": "w2_nested_ns",
    "w2_350_flags_flat_context_to_json": "w2_flat_ns",
    "w1_5_flags_flat_context_to_json": "w1_flat_ns",
    "single_simple_flag_to_json": "single_flag_ns",
    "compile_10000_flags/from_parsed_document": "compile_10k_parsed_ns",
    "compile_10000_flags/from_json_bytes": "compile_10k_bytes_ns",
}


def _median_ns(name: str) -> float:
    estimates = json.loads((CRITERION / name / "new" / "estimates.json").read_text())
    return float(estimates["median"]["point_estimate"])


def run(quick: bool) -> dict[str, float]:
    """Run every criterion benchmark (shorter windows with ``quick``); median ns per benchmark."""
    timing = ["--warm-up-time", "1", "--measurement-time", "2"] if quick else ["--warm-up-time", "2"]
    cmd = ["cargo", "bench", "-p", "evaluator", "--bench", "evaluate", "--", *timing]
    out = subprocess.run(pinned(cmd, LOAD_CPU), cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"cargo bench failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
    return {label: round(_median_ns(name), 1) for name, label in BENCHES.items()}
