"""``python -m control_plane``: ``serve`` the admin API, or seed a ``demo`` project."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from control_plane.settings import ENV_PREFIX, add_server_arguments, from_namespace


def _serve(ns: argparse.Namespace) -> int:
    from granian import Granian
    from granian.constants import Interfaces

    settings = from_namespace(ns)
    # Workers build their app from the environment (granian imports the factory after fork).
    os.environ[ENV_PREFIX + "DATA_DIR"] = str(settings.data_dir)
    os.environ[ENV_PREFIX + "JWT_SECRET"] = settings.jwt_secret
    os.environ[ENV_PREFIX + "ACCESS_TOKEN_TTL"] = str(settings.access_token_ttl)
    os.environ[ENV_PREFIX + "MAX_BODY_BYTES"] = str(settings.max_body_bytes)
    if settings.redis_url:
        os.environ[ENV_PREFIX + "REDIS_URL"] = settings.redis_url
    logging.getLogger("control_plane").info(
        "control plane listening on http://%s:%d (data %s)", settings.host, settings.port, settings.data_dir
    )
    print(f"control plane listening on http://{settings.host}:{settings.port} data={settings.data_dir}", flush=True)
    # One worker: SQLite has one writer, and the login limiter lives in process.
    Granian(
        "control_plane.app:app_from_env",
        factory=True,
        interface=Interfaces.ASGI,
        address=settings.host,
        port=settings.port,
        workers=1,
        log_access=False,
    ).serve()
    return 0


def _demo(ns: argparse.Namespace) -> int:
    from pathlib import Path

    from control_plane.demo import run

    return run(Path(ns.data_dir).resolve(), ns.json)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m control_plane", description="flagedge control plane")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the admin API")
    add_server_arguments(serve)
    serve.set_defaults(func=_serve)
    demo = sub.add_parser("demo", help="seed a demo organisation, project, flags, release and widget")
    demo.add_argument(
        "--data-dir",
        default=os.environ.get(ENV_PREFIX + "DATA_DIR", "./data"),
        help=f"data directory [env {ENV_PREFIX}DATA_DIR]",
    )
    demo.add_argument("--json", action="store_true", help="print one JSON object with the keys")
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
