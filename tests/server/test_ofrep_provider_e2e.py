"""End to end: the OpenFeature OFREP provider from PyPI, as is, against a real edge process.

The edge (``python -m server serve``) serves a prepared LMDB store on a free loopback port; the
process group is killed when the module is done, whatever happened.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx
import orjson
import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from contract.store import SnapshotWriter
from tests.server.ofrep_support import CLIENT_KEY, FEATURES, SERVER_KEY, features_publish, flag, prepare_store

REPO = Path(__file__).resolve().parents[2]
DOMAIN = "flagedge-ofrep-e2e"
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class EdgeProcess:
    base_url: str
    data_dir: Path
    log: Path


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the edge's process group (granian and its workers), SIGKILL it if it lingers."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue


def _wait_ready(proc: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the edge exited with {proc.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
        try:
            if httpx.get(f"{base_url}/ready", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the edge was not ready in {START_TIMEOUT}s:\n{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    data_dir = tmp_path_factory.mktemp("ofrep-e2e")
    prepare_store(data_dir)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = data_dir / "edge.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAGEDGE_")}
    env["PYTHONUNBUFFERED"] = "1"
    command = [sys.executable, "-m", "server", "serve", "--data-dir", str(data_dir), "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            _wait_ready(proc, base_url, log)
            yield EdgeProcess(base_url, data_dir, log)
        finally:
            _stop(proc)


@pytest.fixture(scope="module")
def client(edge: EdgeProcess) -> Iterator[OpenFeatureClient]:
    provider = OFREPProvider(
        base_url=edge.base_url, headers_factory=lambda: {"Authorization": f"Bearer {SERVER_KEY}"}, timeout=5.0
    )
    api.set_provider(provider, domain=DOMAIN)
    try:
        yield api.get_client(domain=DOMAIN)
    finally:
        api.clear_providers()


def test_enabled_flag(client: OpenFeatureClient) -> None:
    details = client.get_boolean_details("new-checkout", False)
    assert details.value is True
    assert details.reason == Reason.STATIC
    assert details.variant == "on"
    assert details.error_code is None
    assert details.flag_metadata["targetingVersion"] == 7
    assert isinstance(details.flag_metadata["flagStateVersion"], int)
    assert client.get_boolean_value("new-checkout", False) is True


def test_disabled_flag(client: OpenFeatureClient) -> None:
    details = client.get_boolean_details("legacy-banner", True)
    assert details.value is False
    assert details.reason == Reason.DISABLED
    assert details.variant == "off"
    assert details.error_code is None


def test_missing_flag_is_the_default_with_flag_not_found(client: OpenFeatureClient) -> None:
    details = client.get_boolean_details("no-such-flag", True)
    assert details.value is True
    assert details.error_code == ErrorCode.FLAG_NOT_FOUND
    assert details.reason == Reason.ERROR
    assert details.error_message == "flag 'no-such-flag' not found"


def test_targeting_key_targets_user_id(client: OpenFeatureClient) -> None:
    vip = client.get_boolean_details("vip-lounge", False, EvaluationContext(targeting_key="u-vip"))
    assert (vip.value, vip.reason, vip.error_code) == (True, Reason.TARGETING_MATCH, None)
    other = client.get_boolean_details("vip-lounge", True, EvaluationContext(targeting_key="u-other"))
    assert (other.value, other.reason, other.error_code) == (False, Reason.DEFAULT, None)
    pro = EvaluationContext(targeting_key="u1", attributes={"company": {"plan": "pro"}})
    assert client.get_boolean_value("pro-dashboard", False, pro) is True


def test_rollout_without_targeting_key_is_the_default_with_targeting_key_missing(client: OpenFeatureClient) -> None:
    details = client.get_boolean_details("gradual-rollout", False)
    assert details.value is False
    assert details.error_code == ErrorCode.TARGETING_KEY_MISSING
    split = client.get_boolean_details("gradual-rollout", False, EvaluationContext(targeting_key="u1"))
    assert (split.value, split.reason) == (True, Reason.SPLIT)


def test_config_variant_and_metadata(client: OpenFeatureClient) -> None:
    gold = EvaluationContext(targeting_key="u1", attributes={"user": {"tier": "gold"}})
    details = client.get_boolean_details("seat-limits", False, gold)
    assert (details.value, details.variant) == (True, "gold")
    assert details.flag_metadata["configKey"] == "gold"
    assert orjson.loads(str(details.flag_metadata["configPayload"])) == {"seats": 10, "label": "Gold"}


def test_non_boolean_resolution_is_a_type_mismatch(client: OpenFeatureClient) -> None:
    details = client.get_string_details("new-checkout", "fallback")
    assert details.value == "fallback"
    assert details.error_code == ErrorCode.TYPE_MISMATCH


def test_unknown_key_is_the_default_with_an_error(edge: EdgeProcess) -> None:
    api.set_provider(
        OFREPProvider(base_url=edge.base_url, headers_factory=lambda: {"Authorization": "Bearer srv_nope"}),
        domain=DOMAIN + "-bad-key",
    )
    details = api.get_client(domain=DOMAIN + "-bad-key").get_boolean_details("new-checkout", False)
    assert details.value is False
    assert details.error_code == ErrorCode.GENERAL
    assert details.error_message == "forbidden"


def test_bulk_etag_over_the_wire(edge: EdgeProcess) -> None:
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    body = {"context": {"targetingKey": "u1"}}
    first = httpx.post(f"{edge.base_url}/ofrep/v1/evaluate/flags", json=body, headers=headers)
    assert first.status_code == 200
    assert [f["key"] for f in first.json()["flags"]] == [f["key"] for f in FEATURES]
    again = httpx.post(
        f"{edge.base_url}/ofrep/v1/evaluate/flags",
        json=body,
        headers={**headers, "If-None-Match": first.headers["etag"]},
    )
    assert again.status_code == 304


def test_event_stream_announces_a_new_version(edge: EdgeProcess) -> None:
    """Last: it publishes a new version of the store."""
    bulk = httpx.post(
        f"{edge.base_url}/ofrep/v1/evaluate/flags", json={}, headers={"Authorization": f"Bearer {CLIENT_KEY}"}
    )
    version = bulk.json()["metadata"]["flagStateVersion"]
    [stream] = bulk.json()["eventStreams"]
    assert stream["type"] == "sse"
    # Relative (no --public-url): resolved against the edge, as a provider resolves it.
    assert stream["url"].startswith("/ofrep/v1/stream?")
    with httpx.stream("GET", urljoin(edge.base_url, stream["url"]), timeout=httpx.Timeout(10.0)) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        assert next(lines) == "retry: 2000"
        writer = SnapshotWriter(edge.data_dir)
        try:
            published = writer.publish(
                features_publish([*FEATURES, flag("late", 1, {"type": "constant", "value": True})])
            )
        finally:
            writer.close()
        assert published > version
        data = next(line for line in lines if line.startswith("data: "))
    assert orjson.loads(data.removeprefix("data: ")) == {
        "type": "refetchEvaluation",
        "etag": f'"{published}"',
        "flagStateVersion": published,
    }
    refetched = httpx.post(
        f"{edge.base_url}/ofrep/v1/evaluate/flags",
        json={},
        headers={"Authorization": f"Bearer {CLIENT_KEY}", "If-None-Match": bulk.headers["etag"]},
    )
    assert refetched.status_code == 200
    assert refetched.json()["flags"][-1]["key"] == "late"
