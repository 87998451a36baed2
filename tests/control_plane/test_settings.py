"""Control-plane settings: flags, their environment twins, and the trip to granian's workers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from control_plane.settings import ENV_PREFIX, Settings, from_env, from_namespace, server_parser, to_env


def test_every_flag_has_an_env_twin_named_in_its_help() -> None:
    for action in server_parser()._actions:
        if action.option_strings:
            env = ENV_PREFIX + action.option_strings[0].removeprefix("--").replace("-", "_").upper()
            assert action.help is not None and env in action.help, action.option_strings


def test_workers_rebuild_exactly_the_masters_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = [
        "--data-dir", str(tmp_path), "--port", "9123", "--redis-url", "redis://127.0.0.1:1/0",
        "--jwt-secret", "j" * 40, "--redis-retention-versions", "7", "--redis-retention-seconds", "60",
        "--redis-retention-bytes", "4096", "--body-timeout", "2.5", "--api-v1-rate-per-key", "7.5",
        "--api-v1-burst-per-key", "15", "--api-v1-rate-per-address", "0", "--api-v1-burst-per-address", "3",
        "--oidc-issuer", "https://id.example.com/realms/a", "--oidc-client-id", "cp",
        "--oidc-client-secret", "c" * 30, "--oidc-redirect-url", "https://admin.example.com/cb", "--oidc-signup", "yes",
    ]  # fmt: skip
    master = from_namespace(server_parser().parse_args(argv))
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    for name, value in to_env(master).items():
        monkeypatch.setenv(name, value)
    worker = from_env()
    assert worker == master
    assert (worker.redis_retention_versions, worker.redis_retention_seconds, worker.redis_retention_bytes) == (
        7,
        60,
        4096,
    )
    assert (worker.api_v1_rate_per_key, worker.api_v1_burst_per_key, worker.api_v1_rate_per_address) == (7.5, 15, 0)
    assert worker.api_v1_burst_per_address == 3
    assert worker.oidc is not None and worker.oidc.signup and worker.oidc.client_id == "cp"
    assert "c" * 30 not in repr(worker) and "c" * 30 not in repr(worker.oidc)  # never in a log line


def test_oidc_is_off_by_default_and_refuses_half_a_configuration(tmp_path: Path) -> None:
    parser = server_parser()
    assert from_namespace(parser.parse_args(["--data-dir", str(tmp_path)])).oidc is None
    half = ["--data-dir", str(tmp_path), "--oidc-issuer", "https://id.example.com", "--oidc-client-id", "cp"]
    with pytest.raises(SystemExit, match="--oidc-client-secret, --oidc-redirect-url"):
        from_namespace(parser.parse_args(half))
    with pytest.raises(SystemExit):
        parser.parse_args(["--oidc-signup", "maybe"])


def test_redis_retention_defaults_bound_memory() -> None:
    defaults = Settings(data_dir=Path("."))
    assert defaults.redis_retention_versions == 1000
    assert defaults.redis_retention_seconds == 3600
    assert defaults.redis_retention_bytes == 64 << 20


def test_replicas_sharing_a_database_must_share_their_secrets(tmp_path: Path) -> None:
    # Secrets generated into one replica's data dir would not be the other replicas': tokens one
    # signs, or SDK keys it seals into the shared database, would be unreadable elsewhere.
    parser = server_parser()
    base = ["--data-dir", str(tmp_path), "--database-url", "postgresql://127.0.0.1:1/flagedge"]
    with pytest.raises(SystemExit, match=r"--jwt-secret .* and --key-encryption-secret"):
        from_namespace(parser.parse_args(base))
    with pytest.raises(SystemExit, match="needs --key-encryption-secret"):
        from_namespace(parser.parse_args([*base, "--jwt-secret", "j" * 40]))
    with pytest.raises(SystemExit, match="needs --jwt-secret"):
        from_namespace(parser.parse_args([*base, "--key-encryption-secret", "k" * 40]))
    both = from_namespace(parser.parse_args([*base, "--jwt-secret", "j" * 40, "--key-encryption-secret", "k" * 40]))
    assert both.key_encryption_secret == "k" * 40
    assert not (tmp_path / "key_encryption_secret").exists() and not (tmp_path / "jwt_secret").exists()
