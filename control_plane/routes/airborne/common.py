"""Pieces the Airborne route modules share: the application context, file and package keys,
pagination, JSON columns, per-application counters. Nothing here declares a route."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from control_plane import authz
from control_plane.dialect import Connection, Row
from control_plane.errors import ApiError, validation
from control_plane.http import Ctx

APP = ("x-organisation", "x-application")
TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
MAX_FILE_KEY = 1200
_FILE_KEY = re.compile(r"^(?P<path>.+)@(?:(?:version:(?P<version>[0-9]{1,9}))|(?:tag:(?P<tag>.+)))$")
_PACKAGE_KEY = re.compile(r"^(?:(?:version:(?P<version>[0-9]{1,9}))|(?:tag:(?P<tag>.+)))$")
DEFAULT_TAG = "latest"


def app_access(ctx: Ctx, db: Connection, needed: str) -> authz.ProjectAccess:
    """The application named by the ``x-organisation``/``x-application`` headers, at ``needed`` role."""
    return authz.application(db, ctx.principal, ctx.header("x-organisation"), ctx.header("x-application"), needed)


MAX_JSON_DEPTH = 32


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def check_json_value(value: Any, max_bytes: int) -> None:
    """A free-form JSON value of a request: at most ``MAX_JSON_DEPTH`` levels of objects/arrays and
    ``max_bytes`` when encoded. Raises ValueError, which the body model reports as a 400 (deeper
    values would also fail to encode when stored, and releases nest them further)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"must not be nested deeper than {MAX_JSON_DEPTH} levels")
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    if len(dumps(value)) > max_bytes:
        raise ValueError(f"must serialize to at most {max_bytes} bytes")


def loads(text: str) -> Any:
    return orjson.loads(text)


def canonical(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


# ---------------------------------------------------------------------------------------------
# File and package keys.


@dataclass(frozen=True)
class FileKey:
    path: str
    version: int | None
    tag: str | None


def parse_file_key(key: str, field: str) -> FileKey:
    """``path@version:N`` or ``path@tag:T``; a bare path means ``path@tag:latest``."""
    if not key or len(key) > MAX_FILE_KEY:
        raise validation("file key must be 1..1200 characters", field, "invalid_file_key")
    m = _FILE_KEY.match(key)
    if m is None:
        if "@version:" in key or "@tag:" in key:
            raise validation("file key must be path@version:N or path@tag:T", field, "invalid_file_key")
        return FileKey(key, None, DEFAULT_TAG)
    version = m.group("version")
    return FileKey(m.group("path"), int(version) if version is not None else None, m.group("tag"))


def file_id(path: str, version: int) -> str:
    return f"{path}@version:{version}"


def find_file(db: Connection, project_id: str, key: FileKey) -> Row | None:
    if key.version is not None:
        sql, arg = "version = ?", key.version
    else:
        sql, arg = "tag = ?", key.tag  # type: ignore[assignment]
    row: Row | None = db.execute(
        f"SELECT * FROM ab_files WHERE project_id = ? AND file_path = ? AND {sql}", (project_id, key.path, arg)
    ).fetchone()
    return row


def parse_package_key(key: str, field: str) -> tuple[int | None, str | None]:
    """``version:N`` or ``tag:T`` (a bare number is a version)."""
    if key.isdigit() and len(key) <= 9:
        return int(key), None
    m = _PACKAGE_KEY.match(key) if len(key) <= 200 else None
    if m is None:
        raise validation("package key must be version:N or tag:T", field, "invalid_package_key")
    version = m.group("version")
    return (int(version) if version is not None else None), m.group("tag")


def find_package(db: Connection, project_id: str, version: int | None, tag: str | None) -> Row | None:
    """A package by version, or the newest package carrying ``tag``."""
    if version is not None:
        row: Row | None = db.execute(
            "SELECT * FROM ab_packages WHERE project_id = ? AND version = ?", (project_id, version)
        ).fetchone()
    else:
        row = db.execute(
            "SELECT * FROM ab_packages WHERE project_id = ? AND tag = ? ORDER BY version DESC LIMIT 1",
            (project_id, tag),
        ).fetchone()
    return row


# ---------------------------------------------------------------------------------------------
# Pagination. The document: "List endpoints support pagination with page, per_page, offset, and
# limit parameters"; the list routes also name ``pages``/``count`` and ``all``. A page size is
# ``limit``, else ``per_page``, else ``count``, lowered to 200 (the document's maximum); the
# first item is ``offset``, else the page's first (``page`` or ``pages``, from 1).

MAX_PAGE_SIZE = 200


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    page: int | None = Field(default=None, ge=1, le=1_000_000, description="Page number (default 1)")
    pages: int | None = Field(default=None, ge=1, le=1_000_000, description="Page number (default 1)")
    count: int = Field(default=50, ge=1, le=1_000_000, description="Items per page (default 50, at most 200)")
    per_page: int | None = Field(default=None, ge=1, le=1_000_000, description="Items per page (as count)")
    offset: int | None = Field(default=None, ge=0, le=10**9, description="Items to skip (overrides the page)")
    limit: int | None = Field(default=None, ge=1, le=1_000_000, description="Items to return (overrides count)")
    all: bool = Field(default=False, description="Return every item without pagination")

    @property
    def page_number(self) -> int:
        return self.pages or self.page or 1

    @property
    def size(self) -> int:
        return min(self.limit or self.per_page or self.count, MAX_PAGE_SIZE)

    @property
    def skip(self) -> int:
        return self.offset if self.offset is not None else (self.page_number - 1) * self.size


def paginate(db: Connection, q: PageQuery, sql: str, params: tuple[Any, ...]) -> tuple[list[Row], int, int]:
    """``(rows, total_items, total_pages)`` of ``sql`` (which must carry its ORDER BY)."""
    total = int(db.execute(f"SELECT COUNT(*) FROM ({sql}) matching", params).fetchone()[0])
    if q.all:
        return list(db.execute(sql, params)), total, 1 if total else 0
    rows = db.execute(f"{sql} LIMIT ? OFFSET ?", (*params, q.size, q.skip)).fetchall()
    return list(rows), total, (total + q.size - 1) // q.size


def not_in_app(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


def next_number(db: Connection, table: str, column: str, project_id: str) -> int:
    """The next per-application counter value (versions, config numbers, release sequences).

    ``table`` and ``column`` are fixed names from the calling module, never request input."""
    row = db.execute(f"SELECT COALESCE(MAX({column}), 0) FROM {table} WHERE project_id = ?", (project_id,)).fetchone()
    return int(row[0]) + 1
