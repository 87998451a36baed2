"""Reflag-shape feature definitions of one environment, from the feature tables."""

from __future__ import annotations

import sqlite3
from typing import Any


def environment_features(db: sqlite3.Connection, environment_id: str) -> list[dict[str, Any]]:
    """``[{"key", "targeting": {"version", "rules"}, "config"?}]`` for every feature of the
    environment's project. Until the feature model exists there are none."""
    del db, environment_id
    return []
