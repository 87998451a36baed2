"""Edge configuration: command-line flags, each with a ``FLAGEDGE_`` environment twin."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

ENV_PREFIX = "FLAGEDGE_"


@dataclass(frozen=True)
class EdgeSettings:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8090
    workers: int = 1
    poll_interval: float = 0.02
    wait_for_version_max: float = 5.0
    max_query_bytes: int = 64 * 1024
    max_context_params: int = 1000
    max_body_bytes: int = 1 << 20
    # Seconds a client may take to send its whole request body (slow-body clients get 408).
    body_timeout: float = 30.0
    # OFREP evaluations per second per SDK key in each worker; 0 turns the limit off.
    ofrep_rate_limit: float = 0.0
    # SDK event requests per second per SDK key, and per client address, in each worker (bursts of
    # INTAKE_BURST_SECONDS times that; a large body costs more, see server/events.py); 0 = off.
    # Generous for real SDKs: a browser sends a few requests a second at most, an office behind
    # one NAT address a few dozen.
    intake_rate_per_key: float = 1000.0
    intake_rate_per_address: float = 100.0
    # Releaseo's public writes (identify, submissions, comments, votes, follows, product events)
    # per second per project key, and per end user of a project, in each worker (bursts of
    # INTAKE_BURST_SECONDS times that, at least RELEASEO_USER_BURST per user); 0 = off. A
    # project key is shared by every browser of a product, an end user is one person.
    releaseo_rate_per_key: float = 500.0
    releaseo_rate_per_user: float = 2.0
    # The spool's bound on disk (every worker's files together) and the free space intake leaves
    # to the rest of the disk (the control plane's SQLite and LMDB); past either, event requests
    # are refused with 503 + Retry-After, never by dropping acknowledged events.
    intake_max_spool_bytes: int = 4 << 30
    intake_min_free_bytes: int = 1 << 30
    # SDK events go to the Redis stream ``flagedge:events`` when set, else (and while Redis is
    # unreachable) to the local spool.
    redis_url: str | None = None
    # Requests one worker serves at once (granian backpressure); every open SSE stream holds one.
    max_concurrency: int = 10_000
    # Load shedding: answer 503 + Retry-After once a worker's event loop runs this many seconds
    # behind (its backlog of queued requests); 0 turns it off. See server/overload.py.
    shed_queue_delay: float = 0.1
    # Origins browsers may call the edge from (comma-separated; "*" = any, "" = no CORS headers).
    cors_origins: str = "*"
    # Where clients reach this edge (``https://flags.example.com``), for the URLs it hands out
    # (OFREP ``eventStreams``). Never taken from the request's Host header, which the client
    # chooses; when unset, those URLs are relative to the edge.
    public_url: str = ""
    # Reverse proxies whose X-Forwarded-For names the client (addresses or CIDRs, comma-separated;
    # "" = the peer is the client). See contract/client_address.py.
    trusted_proxies: str = ""
    # Seconds between flushes of each worker's evaluation counts to the intake (DevCycle's
    # results/evaluations; server/evaluation_counts.py); 0 turns counting off.
    evaluation_counts_interval: float = 10.0


FIELDS: list[tuple[str, str, str, str, type]] = [
    ("--data-dir", "DATA_DIR", "data directory holding the LMDB snapshots", "./data", str),
    ("--host", "EDGE_HOST", "address to listen on", "127.0.0.1", str),
    ("--port", "EDGE_PORT", "port to listen on", "8090", int),
    ("--workers", "EDGE_WORKERS", "worker processes", "1", int),
    ("--poll-interval", "EDGE_POLL_INTERVAL", "seconds between snapshot version checks", "0.02", float),
    ("--wait-for-version-max", "EDGE_WAIT_FOR_VERSION_MAX", "longest waitForVersion wait in seconds", "5", float),
    ("--max-query-bytes", "EDGE_MAX_QUERY_BYTES", "largest accepted query string", str(64 * 1024), int),
    ("--max-context-params", "EDGE_MAX_CONTEXT_PARAMS", "most context.* parameters per request", "1000", int),
    ("--max-body-bytes", "EDGE_MAX_BODY_BYTES", "largest accepted request body", str(1 << 20), int),
    ("--body-timeout", "EDGE_BODY_TIMEOUT", "seconds a client may take to send a request body", "30", float),
    (
        "--ofrep-rate-limit",
        "EDGE_OFREP_RATE_LIMIT",
        "OFREP evaluations per second per SDK key and worker, 0 = off",
        "0",
        float,
    ),
    (
        "--intake-rate-per-key",
        "EDGE_INTAKE_RATE_PER_KEY",
        "SDK event requests per second per SDK key and worker, 0 = off",
        "1000",
        float,
    ),
    (
        "--intake-rate-per-address",
        "EDGE_INTAKE_RATE_PER_ADDRESS",
        "SDK event requests per second per client address and worker, 0 = off",
        "100",
        float,
    ),
    (
        "--releaseo-rate-per-key",
        "EDGE_RELEASEO_RATE_PER_KEY",
        "Releaseo public writes per second per project key and worker, 0 = off",
        "500",
        float,
    ),
    (
        "--releaseo-rate-per-user",
        "EDGE_RELEASEO_RATE_PER_USER",
        "Releaseo public writes per second per end user and worker, 0 = off",
        "2",
        float,
    ),
    (
        "--intake-max-spool-bytes",
        "EDGE_INTAKE_MAX_SPOOL_BYTES",
        "most bytes the event spool may hold on disk; past it events are refused (503)",
        str(4 << 30),
        int,
    ),
    (
        "--intake-min-free-bytes",
        "EDGE_INTAKE_MIN_FREE_BYTES",
        "free disk space events never eat into; below it events are refused (503)",
        str(1 << 30),
        int,
    ),
    ("--redis-url", "REDIS_URL", "Redis for SDK event intake (optional; else the local spool)", "", str),
    (
        "--max-concurrency",
        "EDGE_MAX_CONCURRENCY",
        "requests each worker serves at once, open SSE streams included",
        "10000",
        int,
    ),
    (
        "--shed-queue-delay",
        "EDGE_SHED_QUEUE_DELAY",
        "seconds of queueing after which a worker answers 503 + Retry-After instead, 0 = never shed",
        "0.1",
        float,
    ),
    (
        "--cors-origins",
        "EDGE_CORS_ORIGINS",
        'origins browser SDKs may call from, comma-separated ("*" any, "" none)',
        "*",
        str,
    ),
    (
        "--public-url",
        "PUBLIC_URL",
        "URL clients reach this edge at, for the stream URLs it announces (default: relative URLs)",
        "",
        str,
    ),
    (
        "--trusted-proxies",
        "TRUSTED_PROXIES",
        "reverse proxies (addresses/CIDRs, comma-separated) whose X-Forwarded-For names the client",
        "",
        str,
    ),
    (
        "--evaluation-counts-interval",
        "EDGE_EVALUATION_COUNTS_INTERVAL",
        "seconds between flushes of each worker's evaluation counts, 0 = do not count",
        "10",
        float,
    ),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, env, help_text, default, kind in FIELDS:
        parser.add_argument(
            flag,
            default=os.environ.get(ENV_PREFIX + env, default),
            type=kind,
            help=f"{help_text} [env {ENV_PREFIX}{env}]",
        )


def to_environ(ns: argparse.Namespace) -> None:
    """Hand the parsed flags to granian workers through their environment twins."""
    for flag, env, _, _, _ in FIELDS:
        value = getattr(ns, flag.removeprefix("--").replace("-", "_"))
        os.environ[ENV_PREFIX + env] = str(Path(value).resolve()) if env == "DATA_DIR" else str(value)


def from_environ() -> EdgeSettings:
    values = {}
    for flag, env, _, default, kind in FIELDS:
        values[flag.removeprefix("--").replace("-", "_")] = kind(os.environ.get(ENV_PREFIX + env, default))
    values["data_dir"] = Path(values["data_dir"]).resolve()
    values["redis_url"] = values["redis_url"] or None
    return EdgeSettings(**values)
