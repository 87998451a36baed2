"""The shareyourthoughtswith.me route tests run on a control plane without the /api/v1 rate
limits (test_limits.py turns them on): they send more than a client would in a second."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from control_plane.app import create_app
from control_plane.settings import Settings
from tests.control_plane.conftest import Api


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = Settings(
        data_dir=tmp_path, jwt_secret="test-secret-" + "x" * 32, api_v1_rate_per_key=0, api_v1_rate_per_address=0
    )
    app = create_app(settings)
    with TestClient(app) as client:
        yield Api(client)
