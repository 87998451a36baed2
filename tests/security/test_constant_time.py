"""Secrets are compared in constant time, or only ever looked up by their SHA-256.

Where secrets are checked (found by the AST scan below and by reading the code):

* SDK keys on the edge (``server/state.py`` ``View.sdk_key``): ``sha256(key)`` → dict look-up →
  ``hmac.compare_digest`` of the stored and computed digests.
* API keys on the control plane (``control_plane/authz.py`` ``authenticate``): SQLite look-up of
  ``sha256(key)`` on an indexed column, then ``security.same`` (``hmac.compare_digest``).
* SDK key invalidation (``PUT .../keys/{key}/invalidate``): SQLite look-up by hash or by the
  displayed prefix (public by design), behind admin authentication.
* Passwords: argon2 ``verify`` (constant time in the hash), against a dummy hash when the user
  does not exist (``test_login.py`` measures both paths).
* JWTs: PyJWT ``decode`` (``hmac.compare_digest`` of the HS256 signature).

Why a hash-keyed look-up is not a timing oracle: the attacker chooses the key, but what is
looked up is its SHA-256. Changing one character of a guess changes the digest completely, so a
guess that shares a long prefix with a real key does not share a prefix (or anything else
predictable) with the real key's digest. Whatever time the look-up takes depends on the digest
of the guess (its Python hash, bucket and, at worst, a string comparison against a digest that
collided in the table), and learning bits of digests gets the attacker nothing: there is no way
to steer guesses towards a chosen digest (preimage resistance), so bits cannot be accumulated
into a key the way a byte-by-byte ``==`` on the key itself would allow. The final comparison of
the found digest is ``hmac.compare_digest`` anyway, and the stores keep no plaintext keys (the
schema has only ``key_hash`` and a display ``prefix``; ``test_secrets_in_logs.py`` checks the
data directories and Redis for plaintext keys).
"""

from __future__ import annotations

import ast
import re
import secrets
import statistics
import time

from bench.processes import REPO
from tests.security.conftest import World
from tests.security.rawhttp import KeepAlive

# Names of values that hold a secret or its hash.
SECRETISH = re.compile(r"(secret|token|passw|key_hash|digest|signature|api_?key|sdk_?key|credential)", re.I)
# Raw (unhashed) secrets must never be dict keys.
RAW_SECRET = re.compile(r"(token|secret|passw|api_?key|sdk_?key|credential)", re.I)
HASHED = re.compile(r"(hash|digest)", re.I)
# Comparisons whose operands only *look* secret, each with the reason it is fine.
ALLOWED = {
    ("server/auth.py", "key.kind == SECRET"): "the key's kind against the constant 'server'",
    ("server/auth.py", "key.kind != SECRET"): "the key's kind against the constant 'server'",
    ("control_plane/authz.py", "organisation_id != self.api_key_org"): "organisation ids, not secrets",
    ("control_plane/publisher.py", "entry[1] == digest"): "content digests of published snapshot values",
    (
        "control_plane/routes/devcycle/change_requests.py",
        "approval.feature_digest(w.db, row['feature_id']) != row['base_snapshot']",
    ): "content digests of a feature's definition (has it changed since the change request?)",
    ("server/delta.py", "document_digest(document) == old.digest"): (
        "content digests of an environment's document-wide members (unchanged, or patched in?)"
    ),
    ("server/state.py", "digest != old.digest"): (
        "content digests of an environment's document-wide members (patch them in, or only flags?)"
    ),
}


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):
        if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
            return node.slice.value
        return _name(node.value)
    if isinstance(node, ast.Call):
        return _name(node.func)
    return None


def _sources() -> list[tuple[str, ast.Module]]:
    files = sorted((REPO / "server").rglob("*.py")) + sorted((REPO / "control_plane").rglob("*.py"))
    return [(str(f.relative_to(REPO)), ast.parse(f.read_text(), str(f))) for f in files]


def secret_comparisons(sources: list[tuple[str, ast.Module]]) -> list[str]:
    """Every ``==``/``!=`` (and ordering) between values whose names look like secrets, and every
    ``in``/``.get()``/``[...]`` look-up keyed by an unhashed secret, unless allowed above."""
    found = []
    for path, tree in sources:
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                if all(isinstance(op, ast.Is | ast.IsNot) for op in node.ops):
                    continue  # identity (``is None``), not a value comparison
                if any(isinstance(o, ast.Constant) and isinstance(o.value, int | float) for o in operands):
                    continue  # counters and numbers
                names = [_name(o) for o in operands]
                membership = all(isinstance(op, ast.In | ast.NotIn) for op in node.ops)
                if membership:
                    left = names[0]
                    bad = left is not None and RAW_SECRET.search(left) and not HASHED.search(left)
                else:
                    bad = any(n is not None and SECRETISH.search(n) for n in names)
                if bad and (path, ast.unparse(node)) not in ALLOWED:
                    found.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
                if node.func.attr in ("get", "pop", "setdefault", "__getitem__"):
                    arg = _name(node.args[0])
                    if arg and RAW_SECRET.search(arg) and not HASHED.search(arg):
                        found.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
            elif isinstance(node, ast.Subscript) and not isinstance(node.slice, ast.Constant):
                arg = _name(node.slice)
                if arg and RAW_SECRET.search(arg) and not HASHED.search(arg) and isinstance(node.ctx, ast.Load):
                    found.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_secret_is_compared_with_equality() -> None:
    assert secret_comparisons(_sources()) == []


def test_the_scan_finds_what_it_looks_for() -> None:
    """The scanner itself: each of these would be a timing oracle (or a raw-secret look-up)."""
    bad = ast.parse(
        "def f(token, stored_hash, keys, api_key, row):\n"
        "    a = token == 'x'\n"
        "    b = stored_hash != row['key_hash']\n"
        "    c = keys.get(api_key)\n"
        "    d = keys[token]\n"
        "    e = api_key in keys\n"
        "    ok = keys.get(digest) is None and token is None\n"
    )
    assert len(secret_comparisons([("bad.py", bad)])) == 5


def test_the_checks_use_compare_digest() -> None:
    state = (REPO / "server/state.py").read_text()
    assert "hmac.compare_digest(found.key_hash, digest)" in state
    security = (REPO / "control_plane/security.py").read_text()
    assert "hmac.compare_digest(a.encode(), b.encode())" in security
    authz = (REPO / "control_plane/authz.py").read_text()
    assert "hashed = key_hash(token)" in authz and 'same(row["key_hash"], hashed)' in authz
    assert "algorithms=[self.ALGORITHM]" in security


def test_key_tables_keep_no_plaintext_column() -> None:
    schema = "\n".join(p.read_text() for p in sorted((REPO / "control_plane/schema").glob("*.sql")))
    for table in ("sdk_keys", "api_keys"):
        body = re.search(rf"CREATE TABLE IF NOT EXISTS {table} \((.*?)\n\);", schema, re.S)
        assert body is not None, table
        columns = {line.split()[0] for line in body.group(1).strip().splitlines()}
        assert "key_hash" in columns and not columns & {"key", "secret", "token", "value", "plaintext"}, columns


def _timed(conn: KeepAlive, key: str) -> float:
    t0 = time.perf_counter()
    r = conn.get(f"/features/evaluated?publishableKey={key}")
    elapsed = time.perf_counter() - t0
    assert r.status == 403, r
    return elapsed


def test_a_shared_prefix_with_a_real_key_is_not_faster_or_slower(world: World) -> None:
    """Wrong keys that share all but the last character with the real client key, against wrong
    keys that share nothing, interleaved on one keep-alive connection per worker: the medians are
    the same within noise. A byte-by-byte comparison of keys would make the first group slower
    by the work of ~40 compared characters, which is well under this network-level resolution;
    the point of the test is that no *structural* path (a prefix index, an early ``startswith``
    exit, a different status or error message) distinguishes them."""
    real = world.keys["client"]
    near = [real[:-1] + c for c in "ABCDEFGHIJ" if c != real[-1]]
    far = ["client-prod-" + secrets.token_urlsafe(24) for _ in near]
    conns = [KeepAlive(world.edge_port) for _ in range(4)]
    samples: dict[str, list[float]] = {"near": [], "far": []}
    try:
        for _ in range(5):  # warm-up
            for conn in conns:
                _timed(conn, far[0])
        for i in range(150):
            conn = conns[i % len(conns)]
            pair = [("near", near[i % len(near)]), ("far", far[i % len(far)])]
            for label, key in pair if i % 2 else reversed(pair):
                samples[label].append(_timed(conn, key))
        bodies = {
            label: conns[0].get(f"/features/evaluated?publishableKey={key}").json()["error"]["message"]
            for label, key in (("near", near[0]), ("far", far[0]))
        }
    finally:
        for conn in conns:
            conn.close()
    near_ms, far_ms = (statistics.median(samples[k]) * 1000 for k in ("near", "far"))
    print(f"wrong key, long shared prefix: median {near_ms:.3f} ms; no shared prefix: {far_ms:.3f} ms")
    assert bodies["near"] == bodies["far"]
    # Generous: the machine is shared. A real oracle at this level would be a different code path.
    assert abs(near_ms - far_ms) < max(0.25, 0.3 * min(near_ms, far_ms)), samples


def test_source_scan_covers_the_code() -> None:
    """Guard against the scan silently looking at nothing."""
    sources = _sources()
    assert len(sources) > 20
    assert any(path == "server/state.py" for path, _ in sources)
