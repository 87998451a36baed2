"""Pieces the Releaseo route modules share: the project of the ``{projectId}`` path parameter,
bounded JSON encoding, and opaque list cursors. Nothing here declares a route.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import orjson

from control_plane import authz
from control_plane.dialect import Connection
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


def project_access(db: Connection, ctx: Ctx, needed: str) -> authz.ProjectAccess:
    """The ``{projectId}`` path parameter (key or id), through the caller's memberships, at ``needed``."""
    return authz.project_by_key(db, ctx.principal, ctx.path("projectId"), needed, ctx.header("x-organisation"))


_CURSOR = re.compile(r"^([a-z]{1,8}):([0-9]{1,19})$")


def encode_cursor(kind: str, seq: int) -> str:
    """An opaque cursor: the row sequence number a page ended at, tagged with the list's kind."""
    return base64.urlsafe_b64encode(f"{kind}:{seq}".encode()).rstrip(b"=").decode()


def decode_cursor(kind: str, cursor: str) -> int:
    """The sequence number of a cursor :func:`encode_cursor` made for ``kind``; 400 otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    match = _CURSOR.match(raw)
    if match is None or match.group(1) != kind:
        raise validation("cursor is not one this API returned", "query.cursor", "invalid_cursor")
    return int(match.group(2))


def json_field(value: str | None) -> Any:
    return orjson.loads(value) if value else None
