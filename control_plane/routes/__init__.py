"""Admin API routes. ``users``, ``organisations`` and ``api_keys`` are one module each; the DevCycle,
Airborne and Releaseo APIs are packages with one module per resource, a ``common`` module of
shared helpers, a ``models`` module of request bodies, and ``routers`` in route-table order."""
