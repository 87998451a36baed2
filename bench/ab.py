"""``python -m bench.ab BASELINE``: this checkout's edge against another checkout's, in one run.

The machine is shared and noisy, so a before/after comparison is only fair inside one run,
interleaved: each round starts a stack (control plane + edge, edge pinned to core 0, wrk on
core 1) for every dataset from the baseline and then from this checkout, measures both the same
way, and the report gives the medians of the rounds and the ratio this/baseline.

``BASELINE`` is a checkout with its extension built, e.g. for the commit before a change::

    git worktree add /tmp/base <commit> && (cd /tmp/base && ./dev build)
    python -m bench.ab /tmp/base --rounds 3

Its processes run with its own Python (``BASELINE/.venv/bin/python`` unless ``--baseline-python``)
from its own directory, so its packages are the ones imported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import throughput
from bench.processes import THIS, Checkout
from bench.stack import running
from bench.wrk import WrkResult


@dataclass(frozen=True)
class Sample:
    side: str
    dataset: str
    result: WrkResult


def measure(checkout: Checkout, dataset: str, connections: int, seconds: float) -> WrkResult:
    with running(dataset, checkout=checkout) as stack:
        (result,) = throughput.edge(stack, [connections], seconds)
    return result


def table(samples: list[Sample], datasets: list[str]) -> str:
    lines = [
        "| dataset | baseline req/s | this req/s | this/baseline | baseline p99 ms | this p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for dataset in datasets:

        def median(side: str, field: str, dataset: str = dataset) -> float:
            values: list[float] = [getattr(s.result, field) for s in samples if s.side == side and s.dataset == dataset]
            return statistics.median(values)

        base, this = median("baseline", "rps"), median("this", "rps")
        lines.append(
            f"| {dataset} | {base:,.0f} | {this:,.0f} | {this / base:.3f} | "
            f"{median('baseline', 'p99_ms'):.2f} | {median('this', 'p99_ms'):.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("baseline", type=Path, help="the other checkout (its extension built)")
    parser.add_argument("--baseline-python", type=Path, help="its Python (default: BASELINE/.venv/bin/python)")
    parser.add_argument("--datasets", nargs="+", default=["w1", "w2"], choices=["w1", "w2"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64)
    ns = parser.parse_args(argv)
    root = ns.baseline.resolve()
    python = ns.baseline_python or root / ".venv" / "bin" / "python"
    if not python.exists():
        parser.error(f"{python} not found: build the baseline first (cd {root} && ./dev build)")
    sides = {"baseline": Checkout(root, python), "this": THIS}
    samples: list[Sample] = []
    for round_no in range(1, ns.rounds + 1):
        for dataset in ns.datasets:
            for side, checkout in sides.items():
                result = measure(checkout, dataset, ns.connections, ns.seconds)
                samples.append(Sample(side, dataset, result))
                print(
                    f"round {round_no} {dataset} {side}: {result.rps:,.0f} req/s, p99 {result.p99_ms:.2f} ms,"
                    f" errors {result.errors}",
                    flush=True,
                )
    print()
    print(f"{ns.rounds} rounds, {ns.seconds:g} s each, {ns.connections} connections; medians:")
    print(table(samples, ns.datasets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
