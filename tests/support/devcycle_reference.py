"""DevCycle's own bucketing, ``@devcycle/bucketing`` 1.38.7 from npm, run under Node: the
reference the edge's DevCycle evaluation is compared with.

``tests/e2e/devcycle_bucketing`` holds the package (``package.json`` + lock; ``npm ci`` on first
use) and ``bucket.cjs``, which calls ``generateBucketedConfig`` for many users at a frozen clock.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import orjson

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "e2e" / "devcycle_bucketing"


def ensure_installed() -> None:
    """Install the reference package when its node_modules is missing (fails without node/npm)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "node and npm are required for the DevCycle reference"
    if not (PACKAGE_DIR / "node_modules" / "@devcycle" / "bucketing").exists():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=PACKAGE_DIR, check=True, timeout=300, capture_output=True
        )


def bucket(config: dict[str, Any], users: list[dict[str, Any]], now_ms: int) -> list[dict[str, str]]:
    """Per user, ``{feature key: variation key}`` of the features DevCycle serves it at ``now_ms``."""
    ensure_installed()
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        f.write(orjson.dumps({"config": config, "users": users, "nowMs": now_ms}))
        f.flush()
        out = subprocess.run(
            ["node", str(PACKAGE_DIR / "bucket.cjs"), f.name], check=True, timeout=300, capture_output=True
        )
    result: list[dict[str, str]] = orjson.loads(out.stdout)
    return result
