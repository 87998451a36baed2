"""shareyourthoughtswith.me (seed ``003``): the key API at ``/api/v1`` (published posts, feedback,
telemetry; ``sytwm_sk_``/``sytwm_rk_`` keys, rate-limited per key and per key and address) and the
dashboard routes at ``/admin`` that a signed-in user calls for an organisation (``x-organisation``):
its keys, its posts (create, edit as a new version, publish, unpublish), feedback moderation.

One module per resource: ``keys``, ``posts``, ``feedback``, ``telemetry``. ``common`` holds the
caller and organisation checks, cursors and look-ups, ``models`` the bodies and the post
definition, ``answers`` the check of answers against steps.

``routers`` is in route-table order (it is also the order of the OpenAPI document)."""

from __future__ import annotations

from control_plane.http import Router
from control_plane.routes.sytwm import feedback, keys, posts, telemetry

routers: list[Router] = [keys.router, posts.dashboard, feedback.dashboard, posts.api, feedback.api, telemetry.api]
