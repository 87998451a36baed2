"""The admin dashboard: a browser UI on the admin API, served by the control plane.

The UI is static files (``static/``): Preact + htm as ES modules, Pico.css, vendored from their
npm tarballs (``VENDORED.md``), so nothing is built or fetched at run time. The page signs in with
``POST /users/login`` and calls the same admin routes a script calls, with the user's bearer
token; there is no second write path and no server-side session (see ``serve``).
"""
