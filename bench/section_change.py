"""What a DevCycle-section change costs the evaluator at scale (issue 21), in process.

One environment of ``n`` ``scale-<n>`` flags (:func:`bench.datasets.scale_flags`, stored as the
control plane stores them, :func:`bench.memory.definition`) with the DevCycle section of
``tests/vectors/devcycle-example.json`` (5 features; 5 of the flags are named after them, so
DevCycle's bucketing decides those). The change is one DevCycle-decided feature's distribution
moved, as a write to that feature (or to an audience it reads) gives: the section is a
document-wide member, so every flag of the environment used to compile again.

Reported, as the process CPU time of one call (best of ``--repeat``):

* ``compile_anew_ms``: ``Snapshot.assemble`` of the changed document, what the edge and the
  control plane did before (``server.state``, ``control_plane.incremental``);
* ``patch_section_ms``: ``Snapshot.patch([], [], extras)`` of the old snapshot, what they do now;
* ``patch_one_flag_ms``: a one-flag patch, for scale.

With ``--edge`` the same change goes through an edge worker's refresh instead: the environment and
its flags are published to an LMDB store (``contract.store.SnapshotWriter``), a
``server.state.EdgeState`` loads it, then each of ``--repeat`` versions moves the section back
and forth and the process CPU time of the refresh that reads it is reported
(``edge_refresh_ms``, best and median). Only interfaces every checkout since incremental
snapshots has are used, so the script can measure another checkout (its directory and
``evaluator/python`` first on ``PYTHONPATH``):

    python -m bench.section_change --flags 100000 --repeat 3
    PYTHONPATH=/work/main:/work/main/evaluator/python python bench/section_change.py --edge
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

import evaluator
from bench.datasets import scale_flags
from bench.memory import definition

VECTOR = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "devcycle-example.json"


def entries(n: int, devcycle_keys: list[str]) -> list[bytes]:
    out = []
    for i, flag in enumerate(scale_flags(n)):
        d = definition(flag)
        if i < len(devcycle_keys):
            d["key"] = devcycle_keys[i]
        out.append(orjson.dumps({"order": f"{i:08d}", "definition": d}))
    return out


def moved(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with its first feature's first target's distribution reversed."""
    out = copy.deepcopy(config)
    distribution = out["features"][0]["configuration"]["targets"][0]["distribution"]
    variations = [d["_variation"] for d in distribution]
    for d, variation in zip(distribution, reversed(variations), strict=True):
        d["_variation"] = variation
    return out


def edge(n: int, repeat: int) -> dict[str, Any]:
    """The edge refresh's CPU time for a section change (module doc)."""
    from contract.store import ChangeSet, SnapshotReader, SnapshotWriter, flag_key
    from server.state import EdgeState

    config = json.loads(VECTOR.read_text())["config"]
    sections = [config, moved(config)]

    def environment(section: dict[str, Any]) -> dict[str, Any]:
        document = {"devcycle": section, "sdkVisibility": {}, "customDataTypes": {}}
        return {"project": "p-bench", "environment": "production", "document": document}

    with tempfile.TemporaryDirectory(prefix="flagedge-section-") as tmp:
        writer = SnapshotWriter(Path(tmp), map_size=4 << 30)
        try:
            change = ChangeSet()
            change.environments["e-bench"] = environment(config)
            for raw in entries(n, [f["key"] for f in config["features"]]):
                stored = orjson.loads(raw)
                change.flags[flag_key("e-bench", stored["definition"]["key"])] = {"project": "p-bench", **stored}
            writer.publish(change)
            logging.getLogger("server.state").setLevel(logging.ERROR)  # it lists remote-only flags
            state = EdgeState(Path(tmp), 3600)
            state.reader = SnapshotReader.over(writer)  # LMDB opens a store once per process
            asyncio.run(state.refresh())
            times = []
            for i in range(repeat):
                step = ChangeSet()
                step.environments["e-bench"] = environment(sections[(i + 1) % 2])
                version = writer.publish(step)
                start = time.process_time()
                asyncio.run(state.refresh())
                times.append((time.process_time() - start) * 1000)
                assert state.view.version == version
        finally:
            writer.close()
    return {"flags": n, "edge_refresh_ms": {"best": round(min(times), 1), "median": round(statistics.median(times), 1)}}


def cpu_ms(call: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        call()
        best = min(best, time.process_time() - start)
    return round(best * 1000, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flags", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--edge", action="store_true", help="measure an edge worker's refresh (module doc)")
    args = parser.parse_args(argv)
    if args.edge:
        print(json.dumps(edge(args.flags, args.repeat)))
        return 0
    config = json.loads(VECTOR.read_text())["config"]
    stored = entries(args.flags, [f["key"] for f in config["features"]])
    before = orjson.dumps({"devcycle": config, "sdkVisibility": {}, "customDataTypes": {}})
    after = orjson.dumps({"devcycle": moved(config), "sdkVisibility": {}, "customDataTypes": {}})
    old = evaluator.Snapshot.assemble(before, stored)
    one = [orjson.dumps({"order": "99999999", "definition": {"key": "one", "targeting": {"rules": []}}})]
    report = {
        "flags": args.flags,
        "devcycle_features": len(config["features"]),
        "compile_anew_ms": cpu_ms(lambda: evaluator.Snapshot.assemble(after, stored), args.repeat),
        "patch_section_ms": cpu_ms(lambda: old.patch([], [], after), args.repeat),
        "patch_one_flag_ms": cpu_ms(lambda: old.patch(one, []), args.repeat),
    }
    patched = old.patch([], [], after)
    shared = sum(patched.shares_flag(old, key) for key in old.flag_keys())
    report["flags_shared"] = shared
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
