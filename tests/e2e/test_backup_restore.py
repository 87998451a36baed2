"""``python -m control_plane backup`` while the control plane serves, then ``restore`` into a new
data dir: the restored control plane has every acknowledged write and republishes snapshots."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from bench.processes import REPO, bootstrap_project, free_port, process


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "control_plane", *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_backup_while_serving_and_restore(tmp_path: Path) -> None:
    live, backup_dir, restored = tmp_path / "live", tmp_path / "backup", tmp_path / "restored"
    live.mkdir()
    port = free_port()
    with process(
        ["control_plane", "serve", "--data-dir", str(live), "--port", str(port)],
        f"http://127.0.0.1:{port}/health",
        tmp_path / "cp.log",
    ):
        admin = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        auth, keys = bootstrap_project(admin)
        assert (
            admin.post("/v1/projects/shop/features", json={"key": "kept", "name": "Kept"}, headers=auth).status_code
            == 201
        )
        done = _cli("backup", "--data-dir", str(live), "--out", str(backup_dir))
        assert done.returncode == 0, done.stderr
        assert _cli("backup", "--data-dir", str(live), "--out", str(backup_dir)).returncode == 1  # not empty
    for secret in ("jwt_secret", "key_encryption_secret"):
        assert (backup_dir / secret).stat().st_mode & 0o077 == 0
    assert _cli("restore", "--from", str(backup_dir), "--data-dir", str(live)).returncode == 1  # not empty
    done = _cli("restore", "--from", str(backup_dir), "--data-dir", str(restored))
    assert done.returncode == 0, done.stderr
    port = free_port()
    with process(
        ["control_plane", "serve", "--data-dir", str(restored), "--port", str(port)],
        f"http://127.0.0.1:{port}/health",
        tmp_path / "cp2.log",
    ):
        admin = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        # The same secret: the old token still works; the same data: the feature is there.
        assert admin.get("/v1/projects/shop/features/kept", headers=auth).status_code == 200
        login = admin.post("/users/login", json={"name": "ops", "password": "correct-horse"})
        assert login.status_code == 200
        # The same key-encryption secret: admins still read the full SDK keys.
        env = admin.get("/v1/projects/shop/environments/prod", headers=auth).json()
        assert {kind: env["sdkKeys"][kind][-1]["key"] for kind in keys} == keys
    # Snapshots were rebuilt from the restored store: the SDK key resolves in the new LMDB.
    edge_port = free_port()
    with process(
        ["server", "serve", "--data-dir", str(restored), "--port", str(edge_port)],
        f"http://127.0.0.1:{edge_port}/ready",
        tmp_path / "edge.log",
    ):
        r = httpx.get(f"http://127.0.0.1:{edge_port}/features/evaluated", params={"publishableKey": keys["client"]})
        assert r.status_code == 200, r.text
