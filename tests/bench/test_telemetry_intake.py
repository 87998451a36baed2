"""``bench.telemetry_intake``: a short real run measures POST /api/v1/telemetry without errors,
every answered request is a stored row, and the report renders its table."""

from __future__ import annotations

from pathlib import Path

from bench import report, telemetry_intake


def test_a_short_run_measures_and_stores_every_event(tmp_path: Path) -> None:
    result = telemetry_intake.run(seconds=1, connections=[4])
    assert result["route"] == "POST /api/v1/telemetry" and result["health_rps"] > 0
    (run,) = result["results"]
    assert run["requests"] > 0 and run["rps"] > 0
    assert run["errors"] == 0 and run["non_2xx_3xx"] == 0
    # wrk stops counting at the deadline; requests in flight then still commit.
    assert run["requests"] <= run["stored"] <= run["requests"] + run["connections"]
    meta = {"date": "d", "command": "c", "cpus": 2, "cpu_model": "m", "loadavg_start": "0", "wrk": "w", "seconds": 1}
    markdown = report.markdown({"meta": meta, "errors": {}, "telemetry_intake": result}, [])
    assert "## Telemetry intake (POST /api/v1/telemetry" in markdown
