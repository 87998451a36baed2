"""``bench.sdk_traffic`` end to end: the real control plane and edge, seeded with the demo, under
locust's SDK scenarios for a few seconds; then the failure-rate gate with a wrong SDK key."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from bench.sdk_traffic import ROUTES, main, run


def test_every_scenario_route_answers_without_failures(tmp_path: Path) -> None:
    out = tmp_path / "ok"
    # 40 users: the 2 fixed server SDKs and 38 weighted (27 browsers, 5 apps, 3 widgets, 3 event
    # sessions); waits scaled to a tenth so every route is hit within 10 s.
    summary = run(users=40, spawn_rate=40, duration_s=10, workers=1, out_dir=out, max_failure_rate=0.0, wait_scale=0.1)
    failures = summary["failures"]
    assert summary["gate"]["passed"], (failures, summary["exceptions"])
    assert summary["exceptions"] == [] and summary["gate"]["exceptions"] == 0
    assert summary["total"]["failures"] == 0 and summary["total"]["failure_rate"] == 0.0, failures
    assert summary["missing_routes"] == [], summary["routes"].keys()
    for route in ROUTES:
        row = summary["routes"][route]
        assert row["requests"] > 0 and row["failures"] == 0, (route, row)
        assert sum(row["statuses"].values()) == row["requests"], (route, row)
        assert row["rps"] > 0 and row["median_ms"] is not None and row["p99_ms"] is not None
    assert summary["total"]["requests"] == sum(r["requests"] for r in summary["routes"].values())

    # Re-polls of the same context are answered 304 (the first poll of each context is a 200).
    browser = summary["routes"]["/features/evaluated"]["statuses"]
    assert browser.get("304", 0) > 0 and browser.get("200", 0) > 0, browser
    assert set(browser) <= {"200", "304"}, browser
    for route in ("/features", "/release/{organisation}/{application}", "/sdk/config"):
        assert summary["routes"][route]["statuses"].get("304", 0) > 0, (route, summary["routes"][route])

    # Locust's CSV files, and the complete final table the summary was read from.
    for name in (
        "stats",
        "failures",
        "exceptions",
        "stats_history",
        "final_stats",
        "final_failures",
        "final_exceptions",
    ):
        assert (out / f"sdk_traffic_{name}.csv").is_file(), name
    with open(summary["files"]["stats_csv"], newline="") as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
    assert set(ROUTES) | {"Aggregated"} == set(rows)
    assert int(rows["Aggregated"]["Request Count"]) == summary["total"]["requests"]
    assert json.loads((out / "summary.json").read_text())["total"] == summary["total"]
    assert summary["config"]["locust_exit_code"] == 0


def test_gate_fails_on_wrong_answers(tmp_path: Path) -> None:
    out = tmp_path / "bad"
    code = main(
        [
            "--users",
            "8",
            "--spawn-rate",
            "8",
            "--duration",
            "3",
            "--wait-scale",
            "0.1",
            "--out",
            str(out),
            "--target-override",
            json.dumps({"publishableKeys": ["client-not-a-key"]}),
        ]
    )
    assert code == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["gate"]["passed"] is False
    assert summary["gate"]["failure_rate"] > summary["gate"]["max_failure_rate"] == 0.001
    browser = summary["routes"]["/features/evaluated"]
    assert browser["failures"] == browser["requests"] > 0 and browser["statuses"] == {"403": browser["requests"]}
    assert any("forbidden" in f["error"] for f in summary["failures"]), summary["failures"]
