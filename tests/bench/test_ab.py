"""bench.ab: two checkouts measured in one interleaved run, and the table of medians it prints."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench import ab
from bench.processes import REPO
from bench.wrk import WrkResult


def result(rps: float, p99_ms: float) -> WrkResult:
    return WrkResult(64, int(rps), 1.0, rps, 0.5, 1.0, p99_ms, p99_ms, p99_ms, 0, 0, 0)


def test_table_gives_medians_and_the_ratio() -> None:
    samples = [
        ab.Sample("baseline", "w1", result(100, 4.0)),
        ab.Sample("baseline", "w1", result(300, 2.0)),
        ab.Sample("baseline", "w1", result(200, 3.0)),
        ab.Sample("this", "w1", result(250, 1.0)),
    ]
    assert ab.table(samples).splitlines()[-1] == "| w1 | 200 | 250 | 1.250 | 3.00 | 1.00 |"


def test_compares_a_checkout_with_itself(capsys: pytest.CaptureFixture[str]) -> None:
    # This checkout as its own baseline: both sides start real stacks from their own directory.
    argv = [str(REPO), "--baseline-python", sys.executable, "--datasets", "w1", "--rounds", "1", "--seconds", "1"]
    assert ab.main(argv) == 0
    out = capsys.readouterr().out
    assert "round 1 w1 baseline:" in out and "round 1 w1 this:" in out
    assert out.splitlines()[-1].startswith("| w1 | ")


def test_refuses_an_unbuilt_baseline(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        ab.main([str(tmp_path)])
