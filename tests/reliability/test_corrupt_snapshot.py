"""A corrupt or truncated snapshot value, written behind the edge's back during traffic.

A separate process (py-lmdb cannot open one environment twice in a process) rewrites the
``prod`` environment's value in the control plane's LMDB and bumps ``meta/version``, as a bad
disk, a bad copy or a buggy writer would. For each kind of damage:

* the edge rejects the value (format byte, CRC32, JSON, or the evaluator refusing to compile
  it) and keeps serving prod's last good snapshot: every prod request answers 200 with exactly
  the flags and ``flagStateVersion`` it served before;
* ``/ready`` answers 503 and names prod's environment id in ``notReady`` (and only it);
* staging, in the same store, is unaffected: it keeps answering and picks up its own changes;
* the next publish of the project (here that staging change) repairs prod: the publisher diffs
  against what LMDB holds, not its memory, so it rewrites the damaged value; ``/ready`` is 200
  again, and prod serves its next change.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.processes import REPO, bootstrap_project, free_port
from tests.reliability.support import (
    Answer,
    Traffic,
    assert_no_failures,
    assert_versions_never_go_back,
    control_plane,
    create_flags,
    edge,
    ready,
    traffic,
    wait_until,
)

# Runs in its own process: damage one environment's value, log it as written (a damaged write, as
# edges read only what the store's change log names) and bump the store version, in one write
# transaction (LMDB serializes it with the control plane's writer).
CORRUPT = r"""
import os, struct, sys, zlib
from pathlib import Path
from contract.framing import decode, encode
from contract.store import CHANGELOG, META, TABLES, open_env

data, env_id, how = sys.argv[1:4]
env = open_env(Path(data), readonly=False)
dbs = {name: env.open_db(name.encode()) for name in (META, CHANGELOG, *TABLES)}
with env.begin(write=True) as txn:
    raw = bytes(txn.get(env_id.encode(), db=dbs["environments"]))
    value = decode(raw)
    if how == "garbage":
        bad = os.urandom(len(raw))
    elif how == "truncated":
        bad = raw[: len(raw) // 2]
    elif how == "too-short":
        bad = raw[:3]
    elif how == "bad-crc":
        (crc,) = struct.unpack_from(">I", raw, 1)
        bad = raw[:1] + struct.pack(">I", crc ^ 0xDEADBEEF) + raw[5:]
    elif how == "flipped-byte":
        body = bytearray(raw)
        body[len(body) // 2] ^= 0x01
        bad = bytes(body)
    elif how == "unknown-format":
        bad = b"\x09" + raw[1:]
    elif how == "not-json":
        payload = b'{"version": 1, "document": '
        bad = struct.pack(">BI", 1, zlib.crc32(payload)) + payload
    elif how == "does-not-compile":
        bad = encode({**value, "version": value["version"] + 1, "document": {"features": [{"key": 7}]}})
    else:
        raise SystemExit(f"unknown damage {how}")
    txn.put(env_id.encode(), bad, db=dbs["environments"])
    meta = dbs[META]
    version = int.from_bytes(txn.get(b"version", db=meta), "big")
    txn.put(b"version", (version + 1).to_bytes(8, "big"), db=meta)
    txn.put((version + 1).to_bytes(8, "big") + b"environments\0" + env_id.encode(), b"", db=dbs[CHANGELOG])
env.close()
print(version + 1)
"""

DAMAGE = ["garbage", "truncated", "too-short", "bad-crc", "flipped-byte", "unknown-format", "not-json"]
DAMAGE += ["does-not-compile"]


def _corrupt(data: Path, env_id: str, how: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", CORRUPT, str(data), env_id, how], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip())


def _same(answers: list[Answer]) -> set[tuple[int | None, frozenset[str]]]:
    return {(a.version, a.enabled) for a in answers if a.ok}


def test_corrupt_snapshot_values_during_traffic(tmp_path: Path) -> None:
    data = tmp_path / "host"
    data.mkdir()
    cp, ep = free_port(), free_port()
    observed: list[str] = []
    with control_plane(data, cp):
        admin = httpx.Client(base_url=f"http://127.0.0.1:{cp}", timeout=30)
        auth, prod_keys = bootstrap_project(admin)
        staging = admin.post(
            "/v1/projects/shop/environments",
            json={"name": "Staging", "key": "staging", "type": "staging"},
            headers=auth,
        )
        assert staging.status_code == 201, staging.text
        staging_key = staging.json()["sdkKeys"]["client"][0]["key"]
        prod_id = admin.get("/v1/projects/shop/environments/prod", headers=auth).json()["_id"]
        assert create_flags(admin, auth, ["p-0"]).status_code == 201
        assert create_flags(admin, auth, ["s-0"], env="staging").status_code == 201
        with edge(data, ep):
            url = f"http://127.0.0.1:{ep}"
            wait_until(lambda: ready(url)[0] == 200, "edge ready")
            on_prod = Traffic(url, prod_keys["client"], threads=2, name="prod")
            on_staging = Traffic(url, staging_key, threads=1, name="staging")
            with traffic(on_prod, on_staging):
                good = on_prod.wait_for(lambda a: a.ok and "p-0" in a.enabled, "prod serving")
                on_staging.wait_for(lambda a: a.ok and "s-0" in a.enabled, "staging serving")
                for i, how in enumerate(DAMAGE, start=1):
                    store_version = _corrupt(data, prod_id, how)
                    wait_until(lambda: ready(url)[1]["version"] >= store_version, "the damaged version")  # noqa: B023
                    status, body = ready(url)
                    assert status == 503, (how, body)
                    assert body["notReady"] == [prod_id], (how, body)
                    observed.append(f"{how}: {body['problems'][prod_id]}")
                    time.sleep(0.3)
                    damaged_at = time.monotonic()
                    time.sleep(0.3)
                    repaired_from = time.monotonic()
                    # Other environments move on: a staging change is published and served, and
                    # that publish of the project rewrites prod's damaged value.
                    assert create_flags(admin, auth, [f"s-{i}"], env="staging").status_code == 201
                    staged = f"s-{i}"
                    on_staging.wait_for(lambda a: a.ok and staged in a.enabled, staged)  # noqa: B023
                    wait_until(lambda: ready(url)[0] == 200, f"edge ready again after {how}")
                    assert create_flags(admin, auth, [f"p-{i}"]).status_code == 201
                    repaired = f"p-{i}"
                    fresh = on_prod.wait_for(lambda a: a.ok and repaired in a.enabled, repaired)  # noqa: B023
                    # Prod served its last good snapshot, unchanged, the whole time it was damaged.
                    damaged = on_prod.between(damaged_at, repaired_from)
                    assert damaged, how
                    assert _same(damaged) == {(good.version, good.enabled)}, (how, _same(damaged))
                    good = fresh
                    time.sleep(0.2)
            answers = on_prod.snapshot()
    assert_no_failures(answers, "prod traffic")
    assert_no_failures(on_staging.snapshot(), "staging traffic")
    assert_versions_never_go_back(answers, "prod")
    print("corrupt snapshot values, each rejected with the last good snapshot kept:\n  " + "\n  ".join(observed))
