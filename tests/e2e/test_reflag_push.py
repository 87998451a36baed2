"""The real ``@reflag/node-sdk`` in push mode, its default, sees an admin change within 2 s
(issue 13): the SDK listens on the edge's ``/sse/server`` and refetches ``GET /features`` with
``waitForVersion`` when told of a new version."""

from __future__ import annotations

import queue
import subprocess
import time
from pathlib import Path

from bench.processes import set_flag
from tests.e2e.sdk_support import lines_of, npm_fixture, running_flagedge

SDK_DIR = Path(__file__).parent / "reflag_sdk"
FLAG = "push-flag"
DEADLINE = 2.0


def test_node_sdk_push_mode_sees_admin_changes_within_2_s(tmp_path: Path) -> None:
    npm_fixture(SDK_DIR, "@reflag/node-sdk")
    with running_flagedge(tmp_path, [FLAG]) as fe, open(tmp_path / "sdk.err", "w+") as err:
        sdk = subprocess.Popen(
            ["node", "push.mjs", fe.edge, fe.keys["server"], FLAG],
            cwd=SDK_DIR,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        try:
            lines = lines_of(sdk)
            assert lines.get(timeout=30) == "ready true"
            latencies = []
            for i, enabled in enumerate((False, True, False, True)):
                if i >= 2:
                    # The SDK starts at most one refetch a second: the first two changes come
                    # within that second, these two after a quiet one.
                    time.sleep(1.2)
                started = time.monotonic()
                set_flag(fe.admin, fe.auth, FLAG, enabled)
                try:
                    seen = lines.get(timeout=10)
                except queue.Empty:
                    err.seek(0)
                    raise AssertionError(f"the SDK never saw the change; its stderr: {err.read()}") from None
                latencies.append(time.monotonic() - started)
                assert seen == f"changed {str(enabled).lower()}"
        finally:
            sdk.kill()
            sdk.wait(10)
    # Measured from the admin request to the SDK's answer changing (admin write, publish, the
    # edge's poll, the push, the SDK's waitForVersion refetch).
    print(f"node SDK push: admin change seen after {', '.join(f'{s * 1000:.0f} ms' for s in latencies)}")
    assert max(latencies) < DEADLINE, latencies
