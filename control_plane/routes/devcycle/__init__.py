"""The DevCycle management API (``/v1/projects/...``), one module per resource: projects,
environments, SDK keys, features, variations, variables, configurations, audiences and custom
properties. ``common`` holds the shared look-ups and filter checks, ``models`` the request
bodies, ``views`` the response shapes.

``routers`` is in route-table order (it is also the order of the OpenAPI document)."""

from __future__ import annotations

from control_plane.http import Router
from control_plane.routes.devcycle import (
    audience_patch,
    audiences,
    change_requests,
    configurations,
    custom_properties,
    environments,
    evaluate,
    feature_audit,
    features,
    features_v2,
    integrations,
    metrics,
    project_settings,
    projects,
    sdk_keys,
    self_targeting,
    variables,
    variations,
    webhooks,
)

routers: list[Router] = [
    projects.router,
    project_settings.router,
    environments.router,
    sdk_keys.router,
    features.router,
    features_v2.router,
    feature_audit.router,
    variations.router,
    variables.router,
    configurations.router,
    evaluate.router,
    audiences.router,
    audience_patch.router,
    custom_properties.router,
    integrations.router,
    change_requests.router,
    webhooks.router,
    self_targeting.router,
    metrics.router,
]
