"""A control plane and an edge on one temporary data directory, both in-process.

The control plane (the real app on ``<tmp>``) publishes to ``<tmp>/snapshots``; the edge reads the
same LMDB. py-lmdb refuses to open one environment twice in a process, so the edge's reader
shares the control plane's open environment (one process, one LMDB handle, as LMDB wants).
``sync()`` makes the edge load the newest published version now instead of at its next poll, so
a test reads its own writes.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from contract.store import SnapshotReader
from control_plane.app import create_app as create_control_plane
from control_plane.publisher import Publisher
from control_plane.settings import Settings
from control_plane.store import Store
from server.app import create_app as create_edge
from server.service import Edge
from server.settings import EdgeSettings
from tests.control_plane.conftest import Api
from tests.support.asgi import call


class Stack:
    def __init__(self, api: Api, edge: TestClient, data_dir: Path) -> None:
        self.api = api
        self.edge = edge
        self.data_dir = data_dir

    @property
    def edge_app(self) -> Edge:
        edge: Edge = self.edge.app.state.edge  # type: ignore[attr-defined]
        return edge

    @property
    def store(self) -> Store:
        store: Store = self.api.client.app.state.services.store  # type: ignore[attr-defined]
        return store

    def get_many(self, path: str, queries: list[str], headers: dict[str, str] | None = None) -> list[tuple[int, bytes]]:
        """``GET path?query`` for each query, straight through ASGI on the edge's loop (fast, no HTTP client)."""
        app = self.edge.app

        async def one(query: str) -> tuple[int, bytes]:
            status, _, body = await call(app, "GET", path, query, headers)
            return status, body

        async def run() -> list[tuple[int, bytes]]:
            return [await one(q) for q in queries]

        portal = self.edge.portal
        assert portal is not None
        return portal.call(run)

    def sync(self) -> int:
        """Load the newest snapshot into the edge; its version."""
        portal = self.edge.portal
        assert portal is not None
        portal.call(self.edge_app.state.refresh)
        return self.edge_app.state.view.version


@contextmanager
def stack(data_dir: Path) -> Iterator[Stack]:
    control = create_control_plane(Settings(data_dir=data_dir, jwt_secret="test-secret-" + "x" * 32))
    publisher: Publisher = control.state.services.publish_projects.__self__
    with TestClient(control) as cp:
        # No load shedding: get_many() runs thousands of requests back to back in one coroutine,
        # which starves the shedder's heartbeat exactly as a real backlog would.
        edge_app = create_edge(EdgeSettings(data_dir=data_dir, poll_interval=3600, shed_queue_delay=0))
        edge_app.state.edge.state.reader = SnapshotReader.over(publisher.writer)
        with TestClient(edge_app) as edge:
            s = Stack(Api(cp), edge, data_dir)
            s.sync()
            yield s
    publisher.writer.close()
