"""The Releaseo dashboard API, one module per resource: the widget config behind ``/sdk/config``
(``widgets``), saved segments (``segments``), the board's categories, feature-request moderation,
the roadmap and the changelog (``categories``, ``feature_requests``, ``roadmap``, ``changelog``;
published per project by ``control_plane/board_snapshot.py``) and the SDK users and properties
(``analytics``). ``common`` holds the project look-up, bounded JSON encoding and cursors,
``audience`` the audience of changelog entries and targeted roadmap items, ``models`` the request
bodies.

``routers`` is in route-table order (it is also the order of the OpenAPI document)."""

from __future__ import annotations

from control_plane.http import Router
from control_plane.routes.releaseo import analytics, categories, changelog, feature_requests, roadmap, segments, widgets

routers: list[Router] = [
    widgets.router,
    segments.router,
    categories.router,
    feature_requests.router,
    roadmap.router,
    changelog.router,
    analytics.router,
]
