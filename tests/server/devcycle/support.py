"""Shared by the DevCycle route tests: one environment whose document carries a DevCycle config
(the conformance vector's, with one feature hidden from client SDKs), its keys, and the edge app
over an LMDB store in a TestClient."""

from __future__ import annotations

import copy
import hashlib
import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from contract.store import ChangeSet, SnapshotReader, SnapshotWriter
from server.app import create_app
from server.service import Edge
from server.settings import EdgeSettings

VECTOR = Path(__file__).resolve().parents[2] / "vectors" / "devcycle-example.json"
PROJECT = "proj-dvc"
ENV_ID = "env-dvc-production"
PLAIN_ENV_ID = "env-plain-production"
SERVER_KEY = "server-prod-0123456789abcdefghij"
CLIENT_KEY = "client-prod-0123456789abcdefghij"
MOBILE_KEY = "mobile-prod-0123456789abcdefghij"
# A server key of an environment whose document has no DevCycle config.
PLAIN_SERVER_KEY = "server-plain-0123456789abcdefghij"


def vector() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTOR.read_text())
    return data


def devcycle_config() -> dict[str, Any]:
    """The vector's config."""
    config: dict[str, Any] = copy.deepcopy(vector()["config"])
    return config


# Hidden from client SDKs (the document's sdkVisibility, as the control plane publishes it).
HIDDEN_FEATURE = devcycle_config()["features"][0]


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def initial_publish(config: dict[str, Any] | None = None) -> ChangeSet:
    document = {
        "features": [],
        "devcycle": devcycle_config() if config is None else config,
        "sdkVisibility": {HIDDEN_FEATURE["key"]: {"client": False}},
    }
    keys: dict[str, dict[str, Any] | None] = {
        key_hash(SERVER_KEY): {"environment": ENV_ID, "kind": "server", "project": PROJECT},
        key_hash(CLIENT_KEY): {"environment": ENV_ID, "kind": "client", "project": PROJECT},
        key_hash(MOBILE_KEY): {"environment": ENV_ID, "kind": "mobile", "project": PROJECT},
        key_hash(PLAIN_SERVER_KEY): {"environment": PLAIN_ENV_ID, "kind": "server", "project": PROJECT},
    }
    environments: dict[str, dict[str, Any] | None] = {
        ENV_ID: {"project": PROJECT, "environment": "production", "document": document},
        PLAIN_ENV_ID: {"project": PROJECT, "environment": "plain", "document": {"features": []}},
    }
    return ChangeSet(environments=environments, sdk_keys=keys)


class Harness:
    """The edge app in a TestClient, with the writer of its store."""

    def __init__(self, client: TestClient, writer: SnapshotWriter) -> None:
        self.client = client
        self.writer = writer

    @property
    def edge(self) -> Edge:
        edge: Edge = self.client.app.state.edge  # type: ignore[attr-defined]
        return edge

    def post(self, path: str, body: Any, key: str | None = SERVER_KEY, **headers: str) -> httpx.Response:
        sent = {"Content-Type": "application/json", **headers}
        if key is not None:
            sent.setdefault("Authorization", key)
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        response: httpx.Response = self.client.post(path, content=content, headers=sent)
        return response

    def get(self, path: str, **kw: Any) -> httpx.Response:
        response: httpx.Response = self.client.get(path, **kw)
        return response

    def publish(self, change: ChangeSet) -> int:
        """Publish and make the edge load the new version now."""
        version = self.writer.publish(change)
        portal = self.client.portal
        assert portal is not None
        portal.call(self.edge.state.refresh)
        assert self.edge.state.view.version == version
        return version


@contextmanager
def running_edge(data_dir: Path, **settings: Any) -> Iterator[Harness]:
    writer = SnapshotWriter(data_dir)
    try:
        writer.publish(initial_publish())
        app = create_app(EdgeSettings(data_dir=data_dir, poll_interval=3600, **settings))
        app.state.edge.state.reader = SnapshotReader.over(writer)
        with TestClient(app) as client:
            yield Harness(client, writer)
    finally:
        writer.close()
