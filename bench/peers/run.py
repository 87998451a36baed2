"""``python -m bench peers``: our evaluation routes against the peers, in one interleaved run.

1. Install or find the peers (:mod:`bench.peers.install`).
2. Check agreement (:mod:`bench.peers.check`): for W1, W2 and the 10,000-flag set, every server
   answers the same sampled contexts on its bulk route (and ours on ``/features/evaluated``,
   Unleash Edge on its query-string route, everyone on the single-flag route); any
   disagreement on a flag no rollout decides stops the run before timing. The 10,000-flag
   servers' resident memory is measured then.
3. Time, in rounds: each round starts every server in turn (pinned to core 0, one worker or
   thread) for W1 and for W2 and runs wrk (core 1, one thread) on each of its routes for the
   rows; then granian's ceiling app answering a body of the size of ours on each row's route
   (GET or POST, as the route). The report takes the medians of the rounds.
4. Write ``bench/results/peers-<date>.json``, ``.md`` and ``.png`` and print the Markdown.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import datasets, report, throughput, wrk
from bench.peers import check, contexts, install
from bench.peers.servers import SINGLE_FLAG, Flagd, GoFeatureFlag, Ours, Served, Server, UnleashEdge
from bench.processes import REPO, Checkout
from bench.stack import LOAD_CPU
from bench.wrk import WrkResult, lua_string

OURS = "flagedge"
BASELINE = "flagedge-baseline"
CEILING = "ceiling"
SCALE = "scale-10000"
PEERS = ("unleash-edge", "flagd", "go-feature-flag")


@dataclass(frozen=True)
class Row:
    kind: str
    dataset: str
    label: str


ROWS = (
    Row("evaluated", "w1", "`/features/evaluated` W1"),
    Row("evaluated", "w2", "`/features/evaluated` W2"),
    Row("bulk", "w1", "OFREP bulk W1"),
    Row("bulk", "w2", "OFREP bulk W2"),
    Row("single", "w2", f"OFREP single flag (W2, `{SINGLE_FLAG}`)"),
)


@dataclass(frozen=True)
class Sample:
    round: int
    row: str
    server: str
    result: WrkResult


# --- agreement -------------------------------------------------------------------------------


def _merge(parts: list[check.Agreement]) -> dict[str, Any]:
    bad = [d for p in parts for d in p.disagreements]
    examples = [{"key": d.key, "ours": _outcome(d.ours), "theirs": _outcome(d.theirs)} for d in bad[:5]]
    return {"compared": sum(p.compared for p in parts), "disagreements": len(bad), "examples": examples}


def _outcome(o: check.Outcome | None) -> Any:
    return None if o is None else asdict(o)


@dataclass
class Checked:
    agreement: list[dict[str, Any]]
    body_bytes: dict[str, int]
    memory_mb: dict[str, float]


def agreement(servers: list[Server], work: Path, n: int, with_scale: bool) -> Checked:
    """Every server on the same contexts; our answers are the reference."""
    ours = servers[0]
    assert isinstance(ours, Ours)
    out = Checked([], {}, {})
    for dataset in ("w1", "w2", *([SCALE] if with_scale else [])):
        flags = datasets.flags_for(dataset)
        keys = [f["key"] for f in flags]
        sample = contexts.sample("w1" if dataset == "w1" else "w2", n if dataset != SCALE else max(2, n // 10))
        single = dataset != "w1"
        reference: list[dict[str, check.Outcome | None]] = []
        ref_single: list[check.Outcome | None] = []
        for server in servers:
            print(f"   checking {server.name} on {dataset} ({len(sample)} contexts)", flush=True)
            with server.start(dataset, flags, work / f"check-{dataset}-{server.name}") as served:
                answers = [server.bulk(served, keys, c) for c in sample]
                singles = [server.single(served, SINGLE_FLAG, c) for c in sample] if single else []
                if server is ours:
                    reference, ref_single = answers, singles
                    extra = [ours.evaluated(served, c) for c in sample]
                    out.body_bytes.update(_sizes(ours, served, dataset, sample[0]))
                elif isinstance(server, UnleashEdge):
                    extra = [server.evaluated(served, keys, c) for c in sample]
                else:
                    extra = []
                if dataset == SCALE:
                    out.memory_mb[server.name] = served.rss_mb()
            routes = {"bulk": answers, "evaluated": extra}
            for route, got in routes.items():
                if not got or (server is ours and route == "bulk"):
                    continue
                parts = [check.compare(flags, r, g) for r, g in zip(reference, got, strict=True)]
                out.agreement.append({"server": server.name, "dataset": dataset, "route": route, **_merge(parts)})
            if single and server is not ours:
                parts = [
                    check.compare(flags, {SINGLE_FLAG: r}, {SINGLE_FLAG: g}, only={SINGLE_FLAG})
                    for r, g in zip(ref_single, singles, strict=True)
                ]
                out.agreement.append({"server": server.name, "dataset": dataset, "route": "single", **_merge(parts)})
    return out


def _sizes(ours: Ours, served: Served, dataset: str, context: dict[str, Any]) -> dict[str, int]:
    return {row.label: ours.body_bytes(row.kind, served, context) for row in ROWS if row.dataset == dataset}


# --- timing ----------------------------------------------------------------------------------


def _measure(server: Server, served: Served, row: Row, connections: int, seconds: float) -> WrkResult | None:
    route = server.route(row.kind, served)
    if route is None:
        return None
    script = contexts.lua_script(row.dataset, route.wire, route.path, route.headers)
    wrk.run(served.url, script, connections, 1, cpu=LOAD_CPU)  # warm-up
    return wrk.run(served.url, script, connections, seconds, cpu=LOAD_CPU)


def _ceiling_script(row: Row) -> str:
    if row.kind == "evaluated":
        return throughput.CEILING_SCRIPT
    context = contexts.w1_context(1) if row.dataset == "w1" else contexts.w2_context(1, 123_456)
    body = lua_string(orjson.dumps(contexts.ofrep_body(context)).decode())
    return f'function request() return wrk.format("POST", "/x", {{["Content-Type"] = "application/json"}}, {body}) end'


def rounds(
    servers: list[Server], checked: Checked, work: Path, n: int, connections: int, seconds: float
) -> list[Sample]:
    samples: list[Sample] = []

    def note(round_no: int, row: Row, server: str, result: WrkResult) -> None:
        samples.append(Sample(round_no, row.label, server, result))
        print(
            f"   round {round_no} {row.label} {server}: {result.rps:,.0f} req/s, p99 {result.p99_ms:.2f} ms,"
            f" errors {result.errors}",
            flush=True,
        )

    for round_no in range(1, n + 1):
        for server in servers:
            for dataset in ("w1", "w2"):
                rows = [r for r in ROWS if r.dataset == dataset]
                flags = datasets.flags_for(dataset)
                with server.start(dataset, flags, work / f"r{round_no}-{dataset}-{server.name}") as served:
                    for row in rows:
                        result = _measure(server, served, row, connections, seconds)
                        if result is not None:
                            note(round_no, row, server.name, result)
        for row in ROWS:
            (result,) = throughput.ceiling(
                [connections], seconds, checked.body_bytes.get(row.label), _ceiling_script(row)
            )
            note(round_no, row, CEILING, result)
    return samples


# --- report ----------------------------------------------------------------------------------


def medians(samples: list[Sample]) -> dict[str, dict[str, dict[str, float]]]:
    """row → server → median req/s, p99 and error share over the rounds."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for row in ROWS:
        for name in dict.fromkeys(s.server for s in samples if s.row == row.label):
            mine = [s.result for s in samples if s.row == row.label and s.server == name]
            requests = sum(r.requests for r in mine)
            out.setdefault(row.label, {})[name] = {
                "rps": round(statistics.median(r.rps for r in mine), 1),
                "p99_ms": round(statistics.median(r.p99_ms for r in mine), 2),
                "error_share": round(sum(r.errors for r in mine) / requests, 4) if requests else 0.0,
            }
    return out


def _rps(m: dict[str, float]) -> str:
    text = f"{m['rps']:,.0f} (p99 {m['p99_ms']:.1f} ms)"
    if m["error_share"]:
        text += f", {m['error_share']:.1%} errors"
    return text


def markdown(results: dict[str, Any], plot: Path | None) -> str:
    meds: dict[str, dict[str, dict[str, float]]] = results["medians"]
    meta = results["meta"]
    peers = [p for p in meta["servers"] if p not in (OURS, BASELINE)]
    baseline = BASELINE in meta["servers"]
    out = [
        f"# Peers, {meta['date']}",
        "",
        f"`{meta['command']}`: {meta['rounds']} interleaved rounds, {meta['seconds']:g} s each, "
        f"{meta['connections']} connections; server on core 0 (one worker or thread), wrk on core 1; "
        f"medians. {meta['cpus']} CPUs ({meta['cpu_model']}), load average at start {meta['loadavg_start']}. "
        "Versions: " + ", ".join(f"{name} {v}" for name, v in meta["versions"].items()) + ".",
        "",
        "| route | ours req/s | best peer on that route | ours / best peer | ceiling (granian, same body) "
        "| ours / ceiling |" + (" baseline req/s | ours / baseline |" if baseline else ""),
        "|---|---|---|---|---|---|" + ("---|---|" if baseline else ""),
    ]
    for row in ROWS:
        m = meds.get(row.label, {})
        if OURS not in m:
            continue
        ours = m[OURS]
        size = results["body_bytes"].get(row.label)
        label = row.label + (f" ({size:,} B)" if size else "")
        best = max((p for p in peers if p in m), key=lambda p: m[p]["rps"], default=None)
        best_text = f"{best} {_rps(m[best])}" if best else "no peer has this route"
        ratio = f"{ours['rps'] / m[best]['rps']:.2f}x" if best and m[best]["rps"] else ""
        ceiling = m.get(CEILING)
        ceiling_text = f"{ceiling['rps']:,.0f}" if ceiling else ""
        ceiling_ratio = f"{ours['rps'] / ceiling['rps']:.2f}" if ceiling and ceiling["rps"] else ""
        line = f"| {label} | {_rps(ours)} | {best_text} | {ratio} | {ceiling_text} | {ceiling_ratio} |"
        if baseline:
            before = m.get(BASELINE)
            change = f"{ours['rps'] / before['rps']:.2f}x" if before and before["rps"] else ""
            line += f" {_rps(before) if before else '—'} | {change} |"
        out.append(line)
    servers = [OURS, *([BASELINE] if baseline else []), *peers, CEILING]
    out += ["", "Every server (median req/s, p99):", "", "| route | " + " | ".join(servers) + " |"]
    out.append("|---" * (len(servers) + 1) + "|")
    for row in ROWS:
        m = meds.get(row.label, {})
        out.append(f"| {row.label} | " + " | ".join(_rps(m[s]) if s in m else "—" for s in servers) + " |")
    if results["memory_mb"]:
        mem = results["memory_mb"]
        out += ["", "Resident memory with the 10,000-flag set loaded (whole server, MB): "]
        out[-1] += ", ".join(f"{name} {mb:,.1f}" for name, mb in mem.items()) + "."
    out += ["", "Agreement before timing (flags no rollout decides; ours is the reference):", ""]
    out += ["| server | dataset | route | flag answers compared | disagreements |", "|---|---|---|---|---|"]
    for a in results["agreement"]:
        out.append(f"| {a['server']} | {a['dataset']} | {a['route']} | {a['compared']:,} | {a['disagreements']} |")
    if results["errors"]:
        out += ["", "Errors: " + "; ".join(f"{k}: {v}" for k, v in results["errors"].items())]
    if plot is not None:
        out += ["", f"Plot (beside the JSON, not kept in git): `{plot.name}`"]
    return "\n".join(out) + "\n"


def plot(results: dict[str, Any], path: Path) -> Path:
    meds: dict[str, dict[str, dict[str, float]]] = results["medians"]
    servers = [*results["meta"]["servers"], CEILING]
    labels = [row.label.replace("`", "") for row in ROWS]

    def draw(axes: Any) -> None:
        width = 0.8 / len(servers)
        for i, server in enumerate(servers):
            xs = [n + i * width for n in range(len(ROWS))]
            axes[0].bar(xs, [meds.get(r.label, {}).get(server, {}).get("rps", 0) for r in ROWS], width, label=server)
            axes[1].bar(xs, [meds.get(r.label, {}).get(server, {}).get("p99_ms", 0) for r in ROWS], width, label=server)
        for ax, title, unit in ((axes[0], "Throughput", "req/s"), (axes[1], "p99 latency", "ms")):
            ax.set_xticks([n + 0.4 - width / 2 for n in range(len(ROWS))], labels, rotation=20, ha="right", fontsize=7)
            ax.set(ylabel=unit, title=title, yscale="log")
            ax.legend(fontsize=7)

    return report._plot(path, draw, 2)


# --- command line ----------------------------------------------------------------------------


def _peer(name: str, args: argparse.Namespace) -> Server:
    """The peer ``name``, found or installed as the command line says."""
    if name == "unleash-edge":
        binary = install.unleash_edge(args.cache, args.unleash_edge)
        return UnleashEdge(binary, install.version_of(binary, install.UNLEASH_EDGE_VERSION))
    if name == "flagd":
        binary = install.flagd(args.cache, args.flagd, args.flagd_source)
        return Flagd(binary, install.version_of(binary, install.FLAGD_VERSION))
    binary = install.gofeatureflag(args.cache, args.gofeatureflag, args.gofeatureflag_source)
    return GoFeatureFlag(binary, install.version_of(binary, install.GOFEATUREFLAG_VERSION))


def _servers(args: argparse.Namespace, errors: dict[str, str]) -> list[Server]:
    """Ours, then every peer not skipped that could be found or installed (the others are
    reported in ``errors``)."""
    servers: list[Server] = [Ours()]
    if args.baseline is not None:
        root = args.baseline.resolve()
        python = args.baseline_python or root / ".venv" / "bin" / "python"
        servers.append(Ours(Checkout(root, python), BASELINE))
    for name in PEERS:
        if name in args.skip:
            continue
        try:
            servers.append(_peer(name, args))
        except install.PeerUnavailable as e:
            errors[name] = str(e)
            print(f"   {name} unavailable: {e}", file=sys.stderr, flush=True)
    return servers


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench peers", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--contexts", type=int, default=50, help="contexts per dataset in the agreement check")
    parser.add_argument("--no-scale", action="store_true", help="skip the 10,000-flag check and memory figure")
    parser.add_argument("--skip", action="append", default=[], choices=PEERS)
    parser.add_argument("--allow-disagreement", action="store_true", help="time even if answers disagree")
    parser.add_argument("--cache", type=Path, default=install.DEFAULT_CACHE, help="where peers are installed")
    parser.add_argument("--unleash-edge", type=Path, help="a prebuilt unleash-edge binary")
    parser.add_argument("--flagd", type=Path, help="a prebuilt flagd binary")
    parser.add_argument("--gofeatureflag", type=Path, help="a prebuilt go-feature-flag relayproxy binary")
    parser.add_argument("--flagd-source", type=Path, help="a checkout of flagd's flagd/v0.16.1 tag to build")
    parser.add_argument("--gofeatureflag-source", type=Path, help="a checkout of go-feature-flag's v1.55.2 tag")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout of ours (extension built) timed in the same rounds: before/after",
    )
    parser.add_argument("--baseline-python", type=Path, help="its Python (default: BASELINE/.venv/bin/python)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    errors: dict[str, str] = {}
    print("== peers: install or find", flush=True)
    servers = _servers(args, errors)
    command = "python -m bench peers " + " ".join(argv if argv is not None else sys.argv[2:])
    results: dict[str, Any] = {
        "meta": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": command.strip(),
            "rounds": args.rounds,
            "seconds": args.seconds,
            "connections": args.connections,
            "cpus": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "wrk": wrk.version(),
            "servers": [s.name for s in servers],
            "versions": {s.name: s.version for s in servers if s.version},
        },
        "errors": errors,
        "agreement": [],
        "body_bytes": {},
        "memory_mb": {},
        "medians": {},
        "samples": [],
    }
    with tempfile.TemporaryDirectory(prefix="flagedge-peers-") as tmp:
        print("== peers: agreement", flush=True)
        checked = agreement(servers, Path(tmp), args.contexts, not args.no_scale)
        results.update(agreement=checked.agreement, body_bytes=checked.body_bytes, memory_mb=checked.memory_mb)
        disagreeing = [a for a in checked.agreement if a["disagreements"]]
        if disagreeing and not args.allow_disagreement:
            results["errors"]["agreement"] = f"{len(disagreeing)} server/route pairs disagree; not timed"
        else:
            print("== peers: timing", flush=True)
            samples = rounds(servers, checked, Path(tmp), args.rounds, args.connections, args.seconds)
            results["samples"] = [{**asdict(s), "result": s.result.as_dict()} for s in samples]
            results["medians"] = medians(samples)
    results["meta"]["minutes"] = round((time.monotonic() - started) / 60, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "peers-" + datetime.now(UTC).strftime("%Y-%m-%d")
    json_path = args.out / f"{stem}.json"
    json_path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    png = plot(results, args.out / f"{stem}.png") if results["medians"] else None
    md = markdown(results, png)
    (args.out / f"{stem}.md").write_text(md)
    print(md)
    print(f"json: {json_path}")
    return 1 if results["errors"] else 0
