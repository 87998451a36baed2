"""Pieces the Releaseo route modules share: the project of the ``{projectId}`` path parameter
and bounded JSON encoding. Nothing here declares a route.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from control_plane import authz
from control_plane.errors import ApiError, validation
from control_plane.http import Ctx

ORG = ("x-organisation",)


def _check_tree(value: Any, field: str, max_depth: int) -> None:
    """Object keys are strings and nesting stays within ``max_depth`` (iterative: no recursion limit)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: list[Any] = []
            for key, child in node.items():
                if not isinstance(key, str):
                    raise validation(f"{field} object keys must be strings", field, "invalid_key")
                children.append(child)
        elif isinstance(node, list):
            children = list(node)
        else:
            continue
        if depth > max_depth:
            raise validation(f"{field} is nested deeper than {max_depth} levels", field, "too_deep")
        stack.extend((child, depth + 1) for child in children)


def encode_bounded(value: dict[str, Any], field: str, max_bytes: int, max_depth: int) -> bytes:
    """``value`` as JSON bytes: 400 if too deep or not encodable, 413 if larger than ``max_bytes``."""
    _check_tree(value, field, max_depth)
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError as e:
        raise validation(f"{field} is not encodable as JSON", field, "invalid_json", str(e)) from None
    if len(encoded) > max_bytes:
        raise ApiError(
            413,
            f"{field} larger than {max_bytes} bytes",
            details=[{"field": field, "code": "too_large", "message": f"at most {max_bytes} bytes when encoded"}],
        )
    return encoded


def project_access(db: sqlite3.Connection, ctx: Ctx, needed: str) -> authz.ProjectAccess:
    """The ``{projectId}`` path parameter (key or id), through the caller's memberships, at ``needed``."""
    return authz.project_by_key(db, ctx.principal, ctx.path("projectId"), needed, ctx.header("x-organisation"))
