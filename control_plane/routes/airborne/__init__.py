"""The Airborne API (files, packages, dimensions, cohorts, application configs, releases), one
module per resource. ``common`` holds the application context, keys and pagination, ``models``
the request bodies. The releases the edge serves are built by :mod:`control_plane.releases_snapshot`.

``routers`` is in route-table order (it is also the order of the OpenAPI document)."""

from __future__ import annotations

from control_plane.http import Router
from control_plane.routes.airborne import cohorts, configs, dimensions, files, packages, releases, serve

routers: list[Router] = [
    files.router,
    packages.router,
    dimensions.router,
    cohorts.router,
    configs.router,
    releases.router,
    serve.router,
]
