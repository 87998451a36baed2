"""The benchmark suite's parts: datasets compile and load through the API, wrk's numbers are
parsed from a real run, and the report compares every DESIGN.md §6 target, listing misses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson

import evaluator
from bench import datasets, report, scale, throughput, wrk
from bench.stack import running


def test_rng_is_splitmix64() -> None:
    # Reference outputs of SplitMix64 seeded with 0 (Vigna's splitmix64.c).
    rng = datasets.Rng(0)
    assert [rng.next_u64() for _ in range(3)] == [
        0xE220A8397B1DCDAF,
        0x6E789E6AA1B965F4,
        0x06C45D188009454F,
    ]


def test_datasets_compile_with_the_designed_mix() -> None:
    w2 = datasets.w2_flags()
    assert len(w2) == 350 and len(datasets.w1_flags()) == 5
    kinds = {f["targeting"]["rules"][0]["filter"]["type"] for f in w2}
    assert kinds == {"context", "rolloutPercentage", "group", "jsonLogic", "user", "constant"}
    assert sum("config" in f for f in w2) == 70
    for flags in (w2, datasets.w1_flags(), datasets.scale_flags(1000)):
        snapshot = evaluator.Snapshot(orjson.dumps({"features": flags}))
        assert len(snapshot) == len(flags)


def test_w2_loaded_through_the_api_is_served_and_measured(tmp_path: Path) -> None:
    with running("w2", tmp=tmp_path) as stack:
        assert stack.load.requests == 1 and stack.flags == 350
        r = httpx.get(
            f"{stack.edge_url}/features/evaluated",
            params={"publishableKey": stack.client_key, "context.user.id": "u1", "context.user.appVersion": "2.5.0"},
        )
        assert r.status_code == 200 and len(r.json()["features"]) == 350
        # The compile column compiles the environment from its flags as stored (all 350 of them).
        ms, size = scale.compile_ms(stack)
        assert ms > 0 and size > 50_000
        [result] = throughput.edge(stack, [4], 1)
    assert result.requests > 100 and result.errors == 0
    assert 0 < result.p50_ms <= result.p90_ms <= result.p99_ms <= result.p999_ms <= result.max_ms


def test_wrk_counts_error_answers_as_errors(tmp_path: Path) -> None:
    with running("w1", tmp=tmp_path) as stack:
        result = wrk.run(stack.edge_url, datasets.evaluated_script("not-a-key", "w1"), 2, 1)
    assert result.requests > 0 and result.non_2xx_3xx == result.requests == result.errors


def _results(w2_rps: float, w2_p99: float) -> dict[str, Any]:
    level = {"connections": 64, "p50_ms": 1.0, "p90_ms": 2.0, "p999_ms": 6.0, "errors": 0}
    return {
        "meta": {
            "date": "2026-12-01",
            "command": "python -m bench",
            "cpus": 2,
            "cpu_model": "test",
            "loadavg_start": "0.1",
            "wrk": "wrk",
            "seconds": 1.0,
        },
        "micro": {"w2_nested_ns": 30_000.0, "single_flag_ns": 50.0, "compile_10k_bytes_ns": 90e6},
        "throughput": {
            "ceiling": [{**level, "rps": 40_000.0, "p99_ms": 2.0}],
            "w1": [{**level, "rps": 30_000.0, "p99_ms": 3.0}],
            "w2": [{**level, "rps": w2_rps, "p99_ms": w2_p99}],
        },
        "scale": {
            "flags": [
                {
                    "flags": 10_000,
                    "load_seconds": 3.0,
                    "snapshot_bytes": 3_000_000,
                    "compile_ms": 120.0,
                    "rps": 300.0,
                    "p99_ms": 80.0,
                    "rss_mb_per_worker": 150.0,
                }
            ],
            "workers": [{"workers": 1, "rps": 5000.0, "p50_ms": 1.0, "p99_ms": 4.0, "rss_mb_per_worker": 80.0}],
        },
        "errors": {},
    }


def test_report_lists_every_target_and_its_misses(tmp_path: Path) -> None:
    paths = report.write(_results(w2_rps=12_000, w2_p99=9.0), tmp_path, "run")
    targets = orjson.loads(paths["json"].read_bytes())["targets"]
    verdicts = {t["measure"]: t["met"] for t in targets}
    assert len(verdicts) == 8
    assert verdicts["evaluator, W2 one context, all flags, to JSON bytes"] is False
    assert verdicts["evaluator, single simple flag"] is True
    assert verdicts["edge `/features/evaluated` W1, 1 worker on 1 core"] is True
    # 12k req/s but with p99 9 ms: both must hold at one concurrency level.
    assert verdicts["edge `/features/evaluated` W2, unique contexts, 1 core"] is False
    assert verdicts["edge worker memory, 10,000 flags"] is False
    assert verdicts["change acknowledged → served by edge, same host"] is None
    md = paths["markdown"].read_text()
    assert "Misses: evaluator, W2 one context" in md and "not measured" in md
    assert all(paths[name].stat().st_size > 1000 for name in ("run-throughput", "run-flags", "run-workers"))
