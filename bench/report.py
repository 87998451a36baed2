"""The performance report: every DESIGN.md §6 target next to its measured figure, as JSON, PNG
plots (matplotlib) and a short Markdown summary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench import change_cost

P99_TARGET_MS = 5.0


@dataclass(frozen=True)
class Row:
    measure: str
    target: str
    measured: str
    met: bool | None  # None: not measured in this run

    def as_dict(self) -> dict[str, Any]:
        return {"measure": self.measure, "target": self.target, "measured": self.measured, "met": self.met}


def _get(results: dict[str, Any], *path: str) -> Any:
    node: Any = results
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _edge_row(results: dict[str, Any], scenario: str, label: str, rps_target: float) -> Row:
    target = f"≥ {rps_target:,.0f} req/s, p99 ≤ {P99_TARGET_MS:g} ms"
    levels = _get(results, "throughput", scenario)
    if not levels:
        return Row(label, target, "not measured", None)
    peak = max(levels, key=lambda r: r["rps"])
    within = [r for r in levels if r["p99_ms"] <= P99_TARGET_MS]
    best = max(within, key=lambda r: r["rps"]) if within else None
    text = f"peak {peak['rps']:,.0f} req/s at {peak['connections']} conns (p99 {peak['p99_ms']:.2f} ms)"
    if best is not None and best is not peak:
        text += f"; {best['rps']:,.0f} req/s at {best['connections']} conns with p99 ≤ {P99_TARGET_MS:g} ms"
    met = best is not None and best["rps"] >= rps_target
    ceiling = _get(results, "throughput", "ceiling")
    if ceiling:
        text += f"; {peak['rps'] / max(r['rps'] for r in ceiling):.0%} of the granian ceiling"
    return Row(label, target, text, met)


def _micro_row(results: dict[str, Any], key: str, label: str, target_ns: float, unit: str) -> Row:
    value = _get(results, "micro", key)
    scale = {"ns": 1.0, "µs": 1e3, "ms": 1e6}[unit]
    target = f"≤ {target_ns / scale:g} {unit}"
    if value is None:
        return Row(label, target, "not measured", None)
    return Row(label, target, f"{value / scale:.3g} {unit}", value <= target_ns)


def _propagation_row(results: dict[str, Any], key: str, label: str, target_ms: float) -> Row:
    value = _get(results, "propagation", key)
    target = f"p99 ≤ {target_ms:g} ms"
    if value is None:
        return Row(label, target, "not measured", None)
    text = f"p50 {value['p50_ms']:.1f} ms, p99 {value['p99_ms']:.1f} ms ({value['changes']} changes)"
    return Row(label, target, text, value["p99_ms"] <= target_ms)


def _memory_row(results: dict[str, Any]) -> Row:
    points = _get(results, "scale", "flags") or []
    at = [p for p in points if p["flags"] == 10_000]
    target = "≤ 100 MB RSS"
    if not at:
        return Row("edge worker memory, 10,000 flags", target, "not measured", None)
    rss = at[0]["rss_mb_per_worker"]
    return Row("edge worker memory, 10,000 flags", target, f"{rss:.0f} MB RSS", rss <= 100)


def rows(results: dict[str, Any]) -> list[Row]:
    """DESIGN.md §6, in its order."""
    return [
        _micro_row(results, "w2_nested_ns", "evaluator, W2 one context, all flags, to JSON bytes", 25_000, "µs"),
        _micro_row(results, "single_flag_ns", "evaluator, single simple flag", 100, "ns"),
        _micro_row(results, "compile_10k_bytes_ns", "compile 10,000 flags (from JSON bytes)", 100e6, "ms"),
        _edge_row(results, "w1", "edge `/features/evaluated` W1, 1 worker on 1 core", 25_000),
        _edge_row(results, "w2", "edge `/features/evaluated` W2, unique contexts, 1 core", 10_000),
        _propagation_row(results, "same_host", "change acknowledged → served by edge, same host", 100),
        _propagation_row(results, "second_host_via_sync", "same, second host through Redis + `sync`", 250),
        _memory_row(results),
    ]


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "**MISS**", None: "not measured"}[met]


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in body]


def markdown(results: dict[str, Any], plots: list[Path]) -> str:
    meta = results["meta"]
    out = [
        f"# Performance report — {meta['date']}",
        "",
        f"`{meta['command']}` on {meta['cpus']} cores ({meta['cpu_model']}), load average "
        f"{meta['loadavg_start']} at the start; edge pinned to core 0, load generator (`{meta['wrk']}`) to "
        f"core 1, loopback. {meta['seconds']:.0f} s in all.",
        "",
        "## Targets (DESIGN.md §6)",
        "",
        *_table(
            ["Measure", "Target", "Measured", "Verdict"],
            [[r.measure, r.target, r.measured, _verdict(r.met)] for r in rows(results)],
        ),
    ]
    misses = [r.measure for r in rows(results) if r.met is False]
    out += ["", "Misses: " + ("; ".join(misses) if misses else "none") + "."]
    levels = results.get("throughput", {})
    if levels:
        body = []
        for scenario in ("ceiling", "w1", "w2"):
            for r in levels.get(scenario, []):
                body.append(
                    [
                        scenario,
                        str(r["connections"]),
                        f"{r['rps']:,.0f}",
                        f"{r['p50_ms']:.2f}",
                        f"{r['p90_ms']:.2f}",
                        f"{r['p99_ms']:.2f}",
                        f"{r['p999_ms']:.2f}",
                        str(r["errors"]),
                    ]
                )
        out += ["", "## Peak throughput (wrk)", ""]
        out += _table(["scenario", "conns", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "errors"], body)
        out += [
            "",
            "`ceiling` is granian serving a fixed 15-byte JSON answer from a bare ASGI app (bench/ceiling_app.py).",
        ]
    changes = _get(results, "scale", "changes")
    if changes:
        out += ["", "## One flag change versus number of flags (`bench.change_cost`)", "", change_cost.table(changes)]
    flags = _get(results, "scale", "flags")
    if flags:
        out += ["", "## Versus number of flags (W2 mix, 1 worker)", ""]
        out += _table(
            ["flags", "load via API s", "snapshot MB", "compile ms", "req/s", "p99 ms", "RSS MB/worker"],
            [
                [
                    f"{p['flags']:,}",
                    f"{p['load_seconds']:.1f}",
                    f"{p['snapshot_bytes'] / 1e6:.2f}",
                    f"{p['compile_ms']:.1f}",
                    f"{p['rps']:,.0f}",
                    f"{p['p99_ms']:.1f}",
                    f"{p['rss_mb_per_worker']:.0f}",
                ]
                for p in flags
            ],
        )
        out += ["", "Every request evaluates and returns every flag, so the answer grows with the flag count."]
    workers = _get(results, "scale", "workers")
    if workers:
        out += ["", "## Versus edge workers (W2, all workers on core 0)", ""]
        out += _table(
            ["workers", "req/s", "p50 ms", "p99 ms", "RSS MB/worker"],
            [
                [
                    str(p["workers"]),
                    f"{p['rps']:,.0f}",
                    f"{p['p50_ms']:.2f}",
                    f"{p['p99_ms']:.2f}",
                    f"{p['rss_mb_per_worker']:.0f}",
                ]
                for p in workers
            ],
        )
    sdk = results.get("sdk_traffic")
    if isinstance(sdk, dict) and "routes" in sdk:
        out += ["", "## SDK traffic mix (locust, whole-millisecond latencies)", ""]
        out += _table(
            ["route", "requests", "failures", "req/s", "median ms", "p99 ms"],
            [
                [
                    name,
                    str(r["requests"]),
                    str(r["failures"]),
                    f"{r['rps']:.1f}",
                    f"{r['median_ms']:g}",
                    f"{r['p99_ms']:g}",
                ]
                for name, r in sdk["routes"].items()
            ],
        )
    intake = results.get("telemetry_intake")
    if isinstance(intake, dict) and "results" in intake:
        out += [
            "",
            f"## Telemetry intake ({intake['route']}; /health of the same process: {intake['health_rps']} req/s)",
            "",
        ]
        out += _table(
            ["connections", "req/s", "p50 ms", "p99 ms", "errors", "stored"],
            [
                [
                    str(r["connections"]),
                    f"{r['rps']:.1f}",
                    f"{r['p50_ms']:g}",
                    f"{r['p99_ms']:g}",
                    str(r["errors"]),
                    str(r["stored"]),
                ]
                for r in intake["results"]
            ],
        )
    board = results.get("releaseo")
    if isinstance(board, dict) and "routes" in board:
        out += ["", "## Releaseo public reads (W1-sized board, control plane stopped, wrk)", ""]
        out += _table(
            ["route", "req/s", "p50 ms", "p99 ms", "errors", "vs ceiling"],
            [
                [
                    name,
                    f"{r['rps']:.0f}",
                    f"{r['p50_ms']:.2f}",
                    f"{r['p99_ms']:.2f}",
                    str(r["errors"]),
                    str(r.get("vs_ceiling", "")),
                ]
                for name, r in board["routes"].items()
            ],
        )
    dvc = results.get("devcycle")
    if isinstance(dvc, dict) and "routes" in dvc:
        out += ["", f"## DevCycle W2 ({dvc['features']} features), {dvc['connections']} connections", ""]
        reference = dvc["routes"]["evaluated"]["rps"]
        out += _table(
            ["route", "req/s", "p50 ms", "p99 ms", "vs /features/evaluated"],
            [
                [
                    r["path"],
                    f"{r['rps']:,.0f}",
                    f"{r['p50_ms']:.2f}",
                    f"{r['p99_ms']:.2f}",
                    f"{r['rps'] / reference:.2f}",
                ]
                for r in dvc["routes"].values()
            ],
        )
    errors = results.get("errors") or {}
    if errors:
        out += ["", "## Phases that failed", ""] + [f"- {k}: {v}" for k, v in errors.items()]
    if plots:
        out += ["", "Plots (written beside the JSON, not kept in git): " + ", ".join(f"`{p.name}`" for p in plots)]
    return "\n".join(out) + "\n"


def _plot(path: Path, draw: Callable[[Any], None], subplots: int = 1) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, subplots, figsize=(6 * subplots, 4), squeeze=False)
    draw(axes[0])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plots(results: dict[str, Any], out_dir: Path, stem: str) -> list[Path]:
    written: list[Path] = []
    levels = results.get("throughput", {})
    if levels:

        def throughput(axes: Any) -> None:
            for scenario, points in levels.items():
                axes[0].plot([p["connections"] for p in points], [p["rps"] for p in points], "o-", label=scenario)
                axes[1].plot([p["connections"] for p in points], [p["p99_ms"] for p in points], "o-", label=scenario)
            axes[0].set(xscale="log", xlabel="connections", ylabel="req/s", title="Peak throughput")
            axes[1].set(xscale="log", yscale="log", xlabel="connections", ylabel="p99 ms", title="p99 latency")
            axes[1].axhline(P99_TARGET_MS, color="grey", linestyle="--", linewidth=1)
            for ax in axes:
                ax.legend()

        written.append(_plot(out_dir / f"{stem}-throughput.png", throughput, 2))
    flags = _get(results, "scale", "flags")
    if flags:
        xs = [p["flags"] for p in flags]

        def scale(axes: Any) -> None:
            axes[0].plot(xs, [p["rps"] for p in flags], "o-")
            axes[0].set(xscale="log", yscale="log", xlabel="flags", ylabel="req/s", title="Throughput vs flags")
            axes[1].plot(xs, [p["rss_mb_per_worker"] for p in flags], "o-")
            axes[1].set(xscale="log", xlabel="flags", ylabel="MB", title="RSS per worker vs flags")
            axes[2].plot(xs, [p["compile_ms"] for p in flags], "o-")
            axes[2].set(xscale="log", yscale="log", xlabel="flags", ylabel="ms", title="Compile time vs flags")

        written.append(_plot(out_dir / f"{stem}-flags.png", scale, 3))
    workers = _get(results, "scale", "workers")
    if workers:

        def per_worker(axes: Any) -> None:
            axes[0].plot([p["workers"] for p in workers], [p["rps"] for p in workers], "o-")
            axes[0].set(xlabel="workers (one core)", ylabel="req/s", title="Throughput vs workers")
            axes[1].plot([p["workers"] for p in workers], [p["p99_ms"] for p in workers], "o-")
            axes[1].set(xlabel="workers (one core)", ylabel="p99 ms", title="p99 vs workers")

        written.append(_plot(out_dir / f"{stem}-workers.png", per_worker, 2))
    return written


def write(results: dict[str, Any], out_dir: Path, stem: str) -> dict[str, Path]:
    """``<stem>.json``, the plots and ``<stem>.md`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results["targets"] = [r.as_dict() for r in rows(results)]
    json_path = out_dir / f"{stem}.json"
    json_path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    pngs = plots(results, out_dir, stem)
    md_path = out_dir / f"{stem}.md"
    md_path.write_text(markdown(results, pngs))
    return {"json": json_path, "markdown": md_path, **{p.stem: p for p in pngs}}
