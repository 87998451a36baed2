"""Control-plane configuration: command-line flags, each with a ``FLAGEDGE_`` environment twin."""

from __future__ import annotations

import argparse
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.client_address import parse_networks
from control_plane.bundle_fetch import FetchPolicy, parse_hosts
from control_plane.oidc import OidcConfig

ENV_PREFIX = "FLAGEDGE_"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    redis_url: str | None = None
    # postgresql://… puts the source of truth in PostgreSQL (several replicas may serve it);
    # None: SQLite in the data dir.
    database_url: str | None = field(default=None, repr=False)
    jwt_secret: str = field(default="", repr=False)
    # AES-GCM secret of the values kept encrypted at rest (control_plane.key_vault); "" = the one
    # generated once into the data dir.
    key_encryption_secret: str = field(default="", repr=False)
    access_token_ttl: int = 3600
    refresh_token_ttl: int = 30 * 24 * 3600
    max_body_bytes: int = 1 << 20
    # Seconds a client may take to send its whole request body (else 408): a client trickling a
    # body would otherwise hold a request of the one worker open for ever.
    body_timeout: float = 30.0
    login_attempts_per_minute: int = 10
    # Largest size of the LMDB snapshot store; a publish that does not fit fails loudly.
    lmdb_map_size: int = 1 << 30
    # Change sets kept in Redis for hosts catching up; the oldest go first when any bound is
    # reached. A host that misses one reads the full state instead, so these bound Redis's
    # memory, not correctness. Each change set carries whole environment documents.
    redis_retention_versions: int = 1000
    redis_retention_seconds: int = 3600
    redis_retention_bytes: int = 64 << 20
    # Reverse proxies whose X-Forwarded-For names the client, for login limits (addresses or
    # CIDRs, comma-separated; "" = the peer is the client). See contract/client_address.py.
    trusted_proxies: str = ""
    # Token-bucket limits of /api/v1 (requests per second, and the burst a bucket holds): per API
    # key, and per API key and client address (never shared across keys). 0 turns one off.
    api_v1_rate_per_key: float = 100.0
    api_v1_burst_per_key: float = 200.0
    api_v1_rate_per_address: float = 10.0
    api_v1_burst_per_address: float = 20.0
    # Airborne files: hosts the control plane may download to record size and checksum (empty:
    # none), the largest file and the longest download (control_plane/bundle_fetch.py).
    file_fetch_hosts: frozenset[str] = frozenset()
    file_fetch_max_bytes: int = 256 << 20
    file_fetch_timeout: float = 30.0
    # OIDC login (Airborne's /users/oauth/*, control_plane/oidc.py): off unless an issuer is set,
    # and then the client id, secret and redirect URL are required. Signup through the issuer
    # creates accounts, so it is a separate switch. Password login stays on either way.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = field(default="", repr=False)
    oidc_redirect_url: str = ""
    oidc_signup: bool = False

    @property
    def oidc(self) -> OidcConfig | None:
        if not self.oidc_issuer:
            return None
        return OidcConfig(
            self.oidc_issuer, self.oidc_client_id, self.oidc_client_secret, self.oidc_redirect_url, self.oidc_signup
        )

    # Webhook delivery (control_plane/webhook_delivery.py): loopback, private and link-local
    # targets are refused unless allowed (SSRF); seconds per attempt; attempts before an event is
    # given up; exponential backoff between attempts from base to cap seconds.
    webhook_allow_private: bool = False
    webhook_timeout: float = 10.0
    webhook_max_attempts: int = 12
    webhook_backoff_base: float = 2.0
    webhook_backoff_cap: float = 3600.0
    # Edges whose /ready the dashboard's live state shows (base URLs; none: not shown).
    edge_urls: tuple[str, ...] = ()

    @property
    def fetch_policy(self) -> FetchPolicy:
        return FetchPolicy(self.file_fetch_hosts, self.file_fetch_max_bytes, self.file_fetch_timeout)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "control_plane.sqlite3"

    @property
    def database(self) -> Path | str:
        """What :class:`control_plane.store.Store` opens: the PostgreSQL URL, else the SQLite file."""
        return self.database_url or self.db_path


def env_default(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name, default)


def env_arg(
    parser: argparse.ArgumentParser,
    flag: str,
    env: str,
    help_text: str,
    default: str | None = None,
    kind: Callable[[str], Any] = str,
) -> None:
    """A flag whose default comes from ``FLAGEDGE_<env>``; ``--help`` names the variable."""
    parser.add_argument(flag, default=env_default(env, default), type=kind, help=f"{help_text} [env {ENV_PREFIX}{env}]")


def parse_database_url(url: str) -> str:
    """A ``postgresql://`` URL, or "" for SQLite (argparse turns the ValueError into a usage error)."""
    if url and not url.startswith(("postgresql://", "postgres://")):
        raise ValueError("the database URL is postgresql://user@host:port/database")
    return url


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    env_arg(parser, "--data-dir", "DATA_DIR", "directory of the SQLite store, LMDB snapshots and secrets", "./data")
    env_arg(parser, "--host", "HOST", "address to listen on", "127.0.0.1")
    env_arg(parser, "--port", "PORT", "port to listen on", "8080", int)
    env_arg(parser, "--redis-url", "REDIS_URL", "Redis for multi-host snapshot distribution (optional)")
    env_arg(
        parser,
        "--database-url",
        "DATABASE_URL",
        "postgresql://… keeps the source of truth in PostgreSQL, shared by several control-plane replicas"
        " (default: SQLite in the data dir)",
        kind=parse_database_url,
    )
    env_arg(parser, "--jwt-secret", "JWT_SECRET", "HS256 signing secret (default: generated once into the data dir)")
    env_arg(
        parser,
        "--key-encryption-secret",
        "KEY_ENCRYPTION_SECRET",
        "AES-GCM secret of SDK keys and tokens kept encrypted (default: generated once into the data dir)",
    )
    env_arg(parser, "--access-token-ttl", "ACCESS_TOKEN_TTL", "access token lifetime in seconds", "3600", int)
    env_arg(parser, "--max-body-bytes", "MAX_BODY_BYTES", "largest accepted request body in bytes", str(1 << 20), int)
    env_arg(parser, "--body-timeout", "BODY_TIMEOUT", "seconds a client may take to send a request body", "30", float)
    env_arg(
        parser, "--lmdb-map-size", "LMDB_MAP_SIZE", "largest size of the LMDB snapshot store, bytes", str(1 << 30), int
    )
    env_arg(
        parser,
        "--redis-retention-versions",
        "REDIS_RETENTION_VERSIONS",
        "change sets kept in Redis for catching-up hosts, at most",
        "1000",
        int,
    )
    env_arg(
        parser,
        "--redis-retention-seconds",
        "REDIS_RETENTION_SECONDS",
        "seconds a change set is kept in Redis, at most",
        "3600",
        int,
    )
    env_arg(
        parser,
        "--redis-retention-bytes",
        "REDIS_RETENTION_BYTES",
        "bytes of change sets kept in Redis, at most (the newest is always kept)",
        str(64 << 20),
        int,
    )
    env_arg(
        parser,
        "--trusted-proxies",
        "TRUSTED_PROXIES",
        "reverse proxies (addresses/CIDRs, comma-separated) whose X-Forwarded-For names the client",
        "",
    )
    env_arg(
        parser,
        "--file-fetch-hosts",
        "FILE_FETCH_HOSTS",
        "comma-separated hosts (or host:port) whose Airborne file URLs are downloaded to record size and checksum",
        "",
    )
    env_arg(
        parser,
        "--file-fetch-max-bytes",
        "FILE_FETCH_MAX_BYTES",
        "largest Airborne file downloaded",
        str(256 << 20),
        int,
    )
    env_arg(
        parser, "--file-fetch-timeout", "FILE_FETCH_TIMEOUT", "longest Airborne file download, seconds", "30", float
    )
    for flag, env, help_text, default in _API_V1_LIMITS:
        env_arg(parser, flag, env, help_text, default, float)
    env_arg(parser, "--oidc-issuer", "OIDC_ISSUER", "OIDC issuer URL for /users/oauth/* login (empty: off)", "")
    env_arg(parser, "--oidc-client-id", "OIDC_CLIENT_ID", "OIDC client id", "")
    env_arg(
        parser,
        "--oidc-client-secret",
        "OIDC_CLIENT_SECRET",
        "OIDC client secret (prefer the environment variable: flags show in process lists)",
        "",
    )
    env_arg(parser, "--oidc-redirect-url", "OIDC_REDIRECT_URL", "redirect URL registered with the OIDC issuer", "")
    env_arg(
        parser,
        "--oidc-signup",
        "OIDC_SIGNUP",
        "let /users/oauth/signup create accounts for the issuer's users (true/false)",
        "false",
        parse_bool,
    )

    env_arg(
        parser,
        "--webhook-allow-private",
        "WEBHOOK_ALLOW_PRIVATE",
        "webhooks may target loopback/private/link-local addresses (true/false; refused by default)",
        "false",
        parse_bool,
    )
    env_arg(parser, "--webhook-timeout", "WEBHOOK_TIMEOUT", "seconds per webhook delivery attempt", "10", float)
    env_arg(
        parser, "--webhook-max-attempts", "WEBHOOK_MAX_ATTEMPTS", "attempts before a webhook event fails", "12", int
    )
    env_arg(
        parser, "--webhook-backoff-base", "WEBHOOK_BACKOFF_BASE", "first retry delay of a webhook, seconds", "2", float
    )
    env_arg(
        parser,
        "--webhook-backoff-cap",
        "WEBHOOK_BACKOFF_CAP",
        "longest retry delay of a webhook, seconds",
        "3600",
        float,
    )

    env_arg(
        parser,
        "--edge-urls",
        "EDGE_URLS",
        "comma-separated edge base URLs whose /ready the dashboard shows",
        "",
        parse_urls,
    )


def parse_bool(text: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off); argparse turns the ValueError into a usage error."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def check_oidc(settings: Settings) -> Settings:
    """An issuer needs a client id, a secret and a redirect URL; refuse to start with half of it."""
    if settings.oidc_issuer:
        missing = [
            flag
            for flag, value in (
                ("--oidc-client-id", settings.oidc_client_id),
                ("--oidc-client-secret", settings.oidc_client_secret),
                ("--oidc-redirect-url", settings.oidc_redirect_url),
            )
            if not value
        ]
        if missing:
            raise SystemExit(f"--oidc-issuer is set but {', '.join(missing)} is not")
    return settings


def parse_urls(spec: str) -> tuple[str, ...]:
    """Comma-separated http(s) base URLs, without trailing slashes."""
    urls = tuple(u.strip().rstrip("/") for u in spec.split(",") if u.strip())
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {url!r}")
    return urls


def parse_trusted(spec: str) -> str:
    """``spec`` if every entry is an address or CIDR (argparse turns the ValueError into a usage error)."""
    parse_networks(spec)
    return spec


# The /api/v1 rate-limit flags: (flag, environment twin, help, default).
_API_V1_LIMITS = (
    ("--api-v1-rate-per-key", "API_V1_RATE_PER_KEY", "/api/v1 requests per second per API key (0: no limit)", "100"),
    ("--api-v1-burst-per-key", "API_V1_BURST_PER_KEY", "/api/v1 burst per API key, requests", "200"),
    (
        "--api-v1-rate-per-address",
        "API_V1_RATE_PER_ADDRESS",
        "/api/v1 requests per second per API key and client address (0: no limit)",
        "10",
    ),
    ("--api-v1-burst-per-address", "API_V1_BURST_PER_ADDRESS", "/api/v1 burst per API key and client address", "20"),
)


# Files in the data dir holding the generated secrets (copied by backup and restore).
JWT_SECRET_FILE = "jwt_secret"
KEY_ENCRYPTION_SECRET_FILE = "key_encryption_secret"


def load_jwt_secret(data_dir: Path, configured: str | None) -> str:
    """The configured secret, else one generated on first start and kept (mode 0600) in the data dir."""
    return load_secret(data_dir, JWT_SECRET_FILE, configured)


def load_secret(data_dir: Path, name: str, configured: str | None) -> str:
    """The configured secret, else ``<data_dir>/<name>``, generated on first start (mode 0600)."""
    if configured:
        return configured
    path = data_dir / name
    if path.exists():
        return path.read_text().strip()
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret)
    return secret


def from_namespace(ns: argparse.Namespace) -> Settings:
    if ns.database_url:
        # A secret generated into one replica's data dir would make every other replica refuse
        # its tokens, or fail to read the values it sealed (they all share the database).
        missing = [
            flag
            for flag, value in (
                ("--jwt-secret (FLAGEDGE_JWT_SECRET)", ns.jwt_secret),
                ("--key-encryption-secret (FLAGEDGE_KEY_ENCRYPTION_SECRET)", ns.key_encryption_secret),
            )
            if not value
        ]
        if missing:
            raise SystemExit(f"--database-url needs {' and '.join(missing)}: every replica shares it")
    data_dir = Path(ns.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        data_dir=data_dir,
        host=ns.host,
        port=int(ns.port),
        redis_url=ns.redis_url or None,
        database_url=ns.database_url or None,
        jwt_secret=load_jwt_secret(data_dir, ns.jwt_secret),
        key_encryption_secret=load_secret(data_dir, KEY_ENCRYPTION_SECRET_FILE, ns.key_encryption_secret),
        access_token_ttl=int(ns.access_token_ttl),
        max_body_bytes=int(ns.max_body_bytes),
        body_timeout=float(ns.body_timeout),
        lmdb_map_size=int(ns.lmdb_map_size),
        redis_retention_versions=int(ns.redis_retention_versions),
        redis_retention_seconds=int(ns.redis_retention_seconds),
        redis_retention_bytes=int(ns.redis_retention_bytes),
        trusted_proxies=parse_trusted(ns.trusted_proxies or ""),
        api_v1_rate_per_key=float(ns.api_v1_rate_per_key),
        api_v1_burst_per_key=float(ns.api_v1_burst_per_key),
        api_v1_rate_per_address=float(ns.api_v1_rate_per_address),
        api_v1_burst_per_address=float(ns.api_v1_burst_per_address),
        file_fetch_hosts=parse_hosts(ns.file_fetch_hosts),
        file_fetch_max_bytes=int(ns.file_fetch_max_bytes),
        file_fetch_timeout=float(ns.file_fetch_timeout),
        oidc_issuer=ns.oidc_issuer or "",
        oidc_client_id=ns.oidc_client_id or "",
        oidc_client_secret=ns.oidc_client_secret or "",
        oidc_redirect_url=ns.oidc_redirect_url or "",
        oidc_signup=bool(ns.oidc_signup),
        webhook_allow_private=bool(ns.webhook_allow_private),
        webhook_timeout=float(ns.webhook_timeout),
        webhook_max_attempts=int(ns.webhook_max_attempts),
        webhook_backoff_base=float(ns.webhook_backoff_base),
        webhook_backoff_cap=float(ns.webhook_backoff_cap),
        edge_urls=tuple(ns.edge_urls or ()),
    )
    return check_oidc(settings)


def server_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    add_server_arguments(parser)
    return parser


def to_env(settings: Settings) -> dict[str, str]:
    """The ``FLAGEDGE_`` variables that make :func:`from_env` return ``settings`` again.

    granian's workers build their app after the fork from the environment; going through the
    same flags (whose defaults are the variables) keeps one list of settings."""
    env = {
        "DATA_DIR": str(settings.data_dir),
        "HOST": settings.host,
        "PORT": str(settings.port),
        "JWT_SECRET": settings.jwt_secret,
        "KEY_ENCRYPTION_SECRET": settings.key_encryption_secret,
        "ACCESS_TOKEN_TTL": str(settings.access_token_ttl),
        "MAX_BODY_BYTES": str(settings.max_body_bytes),
        "BODY_TIMEOUT": str(settings.body_timeout),
        "LMDB_MAP_SIZE": str(settings.lmdb_map_size),
        "REDIS_RETENTION_VERSIONS": str(settings.redis_retention_versions),
        "REDIS_RETENTION_SECONDS": str(settings.redis_retention_seconds),
        "REDIS_RETENTION_BYTES": str(settings.redis_retention_bytes),
        "TRUSTED_PROXIES": settings.trusted_proxies,
        "FILE_FETCH_HOSTS": ",".join(sorted(settings.file_fetch_hosts)),
        "FILE_FETCH_MAX_BYTES": str(settings.file_fetch_max_bytes),
        "FILE_FETCH_TIMEOUT": str(settings.file_fetch_timeout),
        "EDGE_URLS": ",".join(settings.edge_urls),
        "API_V1_RATE_PER_KEY": str(settings.api_v1_rate_per_key),
        "API_V1_BURST_PER_KEY": str(settings.api_v1_burst_per_key),
        "API_V1_RATE_PER_ADDRESS": str(settings.api_v1_rate_per_address),
        "API_V1_BURST_PER_ADDRESS": str(settings.api_v1_burst_per_address),
        "OIDC_ISSUER": settings.oidc_issuer,
        "OIDC_CLIENT_ID": settings.oidc_client_id,
        "OIDC_CLIENT_SECRET": settings.oidc_client_secret,
        "OIDC_REDIRECT_URL": settings.oidc_redirect_url,
        "OIDC_SIGNUP": "true" if settings.oidc_signup else "false",
        "WEBHOOK_ALLOW_PRIVATE": "true" if settings.webhook_allow_private else "false",
        "WEBHOOK_TIMEOUT": str(settings.webhook_timeout),
        "WEBHOOK_MAX_ATTEMPTS": str(settings.webhook_max_attempts),
        "WEBHOOK_BACKOFF_BASE": str(settings.webhook_backoff_base),
        "WEBHOOK_BACKOFF_CAP": str(settings.webhook_backoff_cap),
    }
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    return {ENV_PREFIX + name: value for name, value in env.items()}


def from_env() -> Settings:
    return from_namespace(server_parser().parse_args([]))
