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

from bench import throughput, wrk
from bench.peers import contexts
from bench.peers.servers import Ours, Served
from bench.processes import THIS, Checkout
from bench.stack import LOAD_CPU, Stack, running
from bench.wrk import WrkResult

ROUTES = ("evaluated", "bulk", "single")


@dataclass(frozen=True)
class Sample:
    side: str
    dataset: str
    result: WrkResult
    route: str = "evaluated"

    @property
    def row(self) -> str:
        return self.dataset if self.route == "evaluated" else f"{self.route} {self.dataset}"


def measure_route(stack: Stack, route: str, connections: int, seconds: float) -> WrkResult:
    if route == "evaluated":
        (result,) = throughput.edge(stack, [connections], seconds)
        return result
    found = Ours().route(route, Served(stack.edge_url, stack.edge_pid, stack.client_key))
    assert found is not None
    script = contexts.lua_script(stack.dataset, found.wire, found.path, found.headers)
    wrk.run(stack.edge_url, script, connections, 1, cpu=LOAD_CPU)  # warm-up
    return wrk.run(stack.edge_url, script, connections, seconds, cpu=LOAD_CPU)


def measure(
    checkout: Checkout, dataset: str, routes: list[str], connections: int, seconds: float
) -> dict[str, WrkResult]:
    """Every route of ``routes`` that ``dataset`` has, on one stack (the single-flag route's
    flag, ``flag-0003``, is a W2 flag)."""
    with running(dataset, checkout=checkout) as stack:
        return {
            route: measure_route(stack, route, connections, seconds)
            for route in routes
            if route != "single" or dataset == "w2"
        }


def table(samples: list[Sample]) -> str:
    lines = [
        "| row | baseline req/s | this req/s | this/baseline | baseline p99 ms | this p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for row in dict.fromkeys(s.row for s in samples):

        def median(side: str, field: str, row: str = row) -> float:
            values: list[float] = [getattr(s.result, field) for s in samples if s.side == side and s.row == row]
            return statistics.median(values)

        base, this = median("baseline", "rps"), median("this", "rps")
        lines.append(
            f"| {row} | {base:,.0f} | {this:,.0f} | {this / base:.3f} | "
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
    parser.add_argument("--routes", nargs="+", default=["evaluated"], choices=ROUTES)
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
                for route, result in measure(checkout, dataset, ns.routes, ns.connections, ns.seconds).items():
                    sample = Sample(side, dataset, result, route)
                    samples.append(sample)
                    print(
                        f"round {round_no} {sample.row} {side}: {result.rps:,.0f} req/s,"
                        f" p99 {result.p99_ms:.2f} ms, errors {result.errors}",
                        flush=True,
                    )
    print()
    print(f"{ns.rounds} rounds, {ns.seconds:g} s each, {ns.connections} connections; medians:")
    print(table(samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
