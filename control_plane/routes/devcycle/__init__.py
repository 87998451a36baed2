"""The DevCycle management API (``/v1/projects/...``): projects, environments and SDK keys,
features, variations, variables, configurations, audiences and custom properties."""

from __future__ import annotations

from control_plane.http import Router
from control_plane.routes.devcycle import audiences, features, projects

routers: list[Router] = [projects.router, features.router, audiences.router]
