"""``python -m server``: ``serve`` SDK reads from the local LMDB snapshot, or ``sync`` it from Redis."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import resource
import sys

from server import settings


def _serve(ns: argparse.Namespace) -> int:
    from granian import Granian
    from granian.constants import Interfaces

    from contract.lifecycle import mark_master
    from contract.store import snapshot_dir

    settings.to_environ(ns)
    s = settings.from_environ()
    # Every open SSE stream is a socket: use all the descriptors the hard limit allows.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):  # an unlimited hard limit may be refused
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(
        f"edge listening on http://{s.host}:{s.port} workers={s.workers} snapshots={snapshot_dir(s.data_dir)}",
        flush=True,
    )
    mark_master()  # workers die with this process
    Granian(
        "server.app:app_from_env",
        factory=True,
        interface=Interfaces.ASGI,
        address=s.host,
        port=s.port,
        workers=s.workers,
        backpressure=s.max_concurrency,
        log_access=False,
        respawn_failed_workers=True,
    ).serve()
    return 0


def _sync(ns: argparse.Namespace) -> int:
    from pathlib import Path

    from contract.lifecycle import DataDirLocked
    from server.sync import run_sync

    try:
        run_sync(Path(ns.data_dir).resolve(), ns.redis_url)
    except DataDirLocked as e:
        print(f"sync cannot start: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m server", description="flagedge edge server")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve SDK reads from the LMDB snapshot")
    settings.add_arguments(serve)
    serve.set_defaults(func=_serve)
    sync = sub.add_parser("sync", help="follow Redis and apply snapshot versions to this host's LMDB")
    sync.add_argument(
        "--data-dir",
        default=os.environ.get("FLAGEDGE_DATA_DIR", "./data"),
        help="data directory of this host's LMDB [env FLAGEDGE_DATA_DIR]",
    )
    sync.add_argument(
        "--redis-url",
        default=os.environ.get("FLAGEDGE_REDIS_URL"),
        required="FLAGEDGE_REDIS_URL" not in os.environ,
        help="Redis to follow [env FLAGEDGE_REDIS_URL]",
    )
    sync.set_defaults(func=_sync)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
