"""The DevCycle management API (``/v1/projects/...``), one module per resource: projects,
environments, SDK keys, features, variations, variables, configurations, audiences and custom
properties. ``common`` holds the shared look-ups and filter checks, ``models`` the request
bodies, ``views`` the response shapes.

``routers`` is in route-table order (it is also the order of the OpenAPI document)."""

from __future__ import annotations

from control_plane.http import Router
from control_plane.routes.devcycle import (
    audiences,
    configurations,
    custom_properties,
    environments,
    evaluate,
    features,
    projects,
    sdk_keys,
    variables,
    variations,
)

routers: list[Router] = [
    projects.router,
    environments.router,
    sdk_keys.router,
    features.router,
    variations.router,
    variables.router,
    configurations.router,
    evaluate.router,
    audiences.router,
    custom_properties.router,
]
