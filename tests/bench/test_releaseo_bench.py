"""``bench.releaseo``: the W1-sized board loads through the API and the intake, and the edge
answers every public board and roadmap read with 200 while the control plane is stopped."""

from __future__ import annotations

from bench import releaseo


def test_board_and_roadmap_reads_are_served_with_the_control_plane_stopped() -> None:
    out = releaseo.run(seconds=1, connections=4)
    assert out["control_plane"] == "stopped"
    assert set(out["routes"]) == {"board", "roadmap-anonymous", "roadmap-identified", "ceiling"}
    for name, result in out["routes"].items():
        # wrk counts every answer outside 2xx/3xx (a 503, a 403) as an error.
        assert result["requests"] > 100 and result["errors"] == 0, (name, result)
    # The board carries 10 requests with their comments; the anonymous roadmap hides the
    # internal and the targeted item.
    assert out["body_bytes"]["board"] > 1500 and out["body_bytes"]["roadmap"] > 500
