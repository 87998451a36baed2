"""Shared fixtures: where the conformance vectors live."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


def vectors_dir() -> Path:
    """``$VECTORS_DIR``, else the repository's ``tests/vectors``; missing vectors fail."""
    configured = os.environ.get("VECTORS_DIR")
    path = Path(configured) if configured else REPO / "tests" / "vectors"
    if not path.is_dir():
        raise RuntimeError(f"conformance vectors not found at {path}")
    return path


def load_vectors(name: str) -> Any:
    return json.loads((vectors_dir() / name).read_text())


@pytest.fixture(scope="session")
def vectors() -> Path:
    return vectors_dir()
