"""OpenFeature Remote Evaluation Protocol routes (being written)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def ofrep_routes(edge: Any, guard: Callable[[Callable[[Request], Awaitable[Response]]], Any]) -> list[Route]:
    return []
