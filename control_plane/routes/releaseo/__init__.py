"""The Releaseo dashboard API, one module per resource: the widget config behind ``/sdk/config``
(``widgets``) and saved segments (``segments``). ``common`` holds the project look-up and bounded
JSON encoding, ``models`` the request bodies.

``routers`` is in route-table order (it is also the order of the OpenAPI document)."""

from __future__ import annotations

from control_plane.http import Router
from control_plane.routes.releaseo import segments, widgets

routers: list[Router] = [widgets.router, segments.router]
