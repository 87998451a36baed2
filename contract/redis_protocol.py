"""How snapshot versions travel through Redis from the control plane to ``sync`` on other hosts.

Keys (``flagedge`` is the default prefix):

* ``flagedge:version``: the newest announced global version, a decimal string. Only ever raised.
* ``flagedge:change:{N}``: the change set that turned version N-1 into N, encoded like every LMDB
  value (format byte, CRC32, orjson) as ``{"version": N, <table>: {key: value}}`` for every table
  of :class:`contract.store.ChangeSet`, where a ``null`` value deletes the key. Environments are
  stored flag by flag (the ``flags`` table), so a one-flag change is a delta of that one flag.
  Kept for a bounded time (TTL) and count (``flagedge:changes``, a sorted set of retained
  versions, trims the oldest).
* ``flagedge:full``: a hash ``{version: M, data: encoded {"version": M, <table>: {key: value}}}``,
  the complete state at version M, for hosts that miss a change set (new host, expiry, Redis restart).
* channel ``flagedge:versions``: ``N`` is published after version N is stored.

Writes are Lua scripts, so a change set, the version bump and the announcement are one atomic step:
a subscriber that hears ``N`` finds ``flagedge:change:{N}`` (unless it has already expired).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    import redis

from contract.framing import CorruptValue, decode, encode
from contract.store import TABLES, ChangeSet, Items

DEFAULT_PREFIX = "flagedge"

# KEYS: version, index, change, sizes. ARGV: N, blob, ttl seconds, versions to keep, change key
# prefix, channel, bytes to keep. Trims the oldest change sets (expired, or over either bound; the
# newest always stays) and announces N if it is newer. Returns the announced version.
CHANGE_SCRIPT = """
local n = tonumber(ARGV[1])
redis.call('SET', KEYS[3], ARGV[2], 'EX', tonumber(ARGV[3]))
redis.call('ZADD', KEYS[2], n, ARGV[1])
-- A retried push of the same version replaces its size in the ledger instead of adding it twice.
local previous = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0')
redis.call('HSET', KEYS[4], ARGV[1], string.len(ARGV[2]))
local total = redis.call('HINCRBY', KEYS[4], 'total', string.len(ARGV[2]) - previous)
local max_versions = tonumber(ARGV[4])
local max_bytes = tonumber(ARGV[7])
while redis.call('ZCARD', KEYS[2]) > 1 do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  local expired = redis.call('EXISTS', ARGV[5] .. oldest) == 0
  if not (expired or total > max_bytes or redis.call('ZCARD', KEYS[2]) > max_versions) then break end
  redis.call('DEL', ARGV[5] .. oldest)
  redis.call('ZREM', KEYS[2], oldest)
  local size = tonumber(redis.call('HGET', KEYS[4], oldest) or '0')
  redis.call('HDEL', KEYS[4], oldest)
  total = redis.call('HINCRBY', KEYS[4], 'total', -size)
end
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > cur then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('PUBLISH', ARGV[6], ARGV[1])
  return n
end
return cur
"""

# KEYS: full, version. ARGV: M, blob, channel. Returns the announced version before this call.
FULL_SCRIPT = """
local m = tonumber(ARGV[1])
local have = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1')
if m > have then
  redis.call('HSET', KEYS[1], 'version', ARGV[1], 'data', ARGV[2])
end
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
if m > cur then
  redis.call('SET', KEYS[2], ARGV[1])
  redis.call('PUBLISH', ARGV[3], ARGV[1])
end
return cur
"""


@dataclass(frozen=True)
class RedisKeys:
    prefix: str = DEFAULT_PREFIX

    @property
    def version(self) -> str:
        return f"{self.prefix}:version"

    @property
    def full(self) -> str:
        return f"{self.prefix}:full"

    @property
    def index(self) -> str:
        return f"{self.prefix}:changes"

    @property
    def sizes(self) -> str:
        """Hash of change-set sizes by version, and their ``total``: the byte bound's ledger."""
        return f"{self.prefix}:change-sizes"

    @property
    def channel(self) -> str:
        return f"{self.prefix}:versions"

    @property
    def change_prefix(self) -> str:
        return f"{self.prefix}:change:"

    def change(self, version: int) -> str:
        return f"{self.change_prefix}{version}"


def encode_change(version: int, change: ChangeSet) -> bytes:
    return encode({"version": version, **dict(change.tables())})


def _check_table(payload: Mapping[str, Any], table: str, *, allow_delete: bool) -> Items:
    items = payload.get(table, {})
    if not isinstance(items, dict):
        raise CorruptValue(f"{table} is not an object")
    for key, value in items.items():
        if not (isinstance(value, dict) or (allow_delete and value is None)):
            raise CorruptValue(f"{table}[{key!r}] is not an object")
    return items


def _payload_version(payload: Any) -> int:
    if not isinstance(payload, dict):
        raise CorruptValue("payload is not an object")
    version = payload.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CorruptValue("payload has no valid version")
    return version


def decode_change(raw: bytes, expected_version: int) -> ChangeSet:
    """The change set stored for ``expected_version``; CorruptValue if it is damaged or misfiled."""
    payload = decode(raw)
    version = _payload_version(payload)
    if version != expected_version:
        raise CorruptValue(f"change set holds version {version}, expected {expected_version}")
    return ChangeSet(**{table: _check_table(payload, table, allow_delete=True) for table in TABLES})


FullTables = dict[str, dict[str, dict[str, Any]]]


def encode_full(version: int, tables: FullTables) -> bytes:
    return encode({"version": version, **{table: tables.get(table, {}) for table in TABLES}})


def decode_full(version_field: bytes | None, raw: bytes | None) -> tuple[int, FullTables]:
    """The full state from the ``flagedge:full`` hash fields; CorruptValue if missing parts or damaged."""
    if raw is None or version_field is None:
        raise CorruptValue("no full state")
    payload = decode(raw)
    version = _payload_version(payload)
    try:
        declared = int(version_field)
    except ValueError:
        raise CorruptValue("full state version field is not a number") from None
    if declared != version:
        raise CorruptValue(f"full state data holds version {version}, hash says {declared}")
    tables: FullTables = {}
    for table in TABLES:
        items = _check_table(payload, table, allow_delete=False)
        tables[table] = {key: value for key, value in items.items() if value is not None}
    return version, tables


def high_water(conn: redis.Redis, keys: RedisKeys) -> int:
    """The newest version Redis has announced or holds a full state of (0: none): hosts that
    follow it may hold any version up to this one, so a publisher must continue above it."""
    announced, full = conn.get(keys.version), conn.hget(keys.full, "version")
    out = 0
    for raw in (announced, full):
        with contextlib.suppress(TypeError, ValueError):
            out = max(out, int(raw or 0))
    return out


def redact(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{netloc}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def failures() -> tuple[type[Exception], ...]:
    """What a Redis call may raise: redis-py's errors (imported on first use, as by
    :func:`client`) and the socket's."""
    import redis

    return (redis.RedisError, OSError, TimeoutError)


def client(url: str, *, name: str, socket_timeout: float, connect_timeout: float) -> redis.Redis:
    """A client that fails fast and never retries on its own: callers own retries and backoff."""
    # Imported on first use: redis-py (with the TLS modules it loads) adds about 20 MB to a
    # process, and every edge worker imports this module, with or without a Redis configured.
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        retry=Retry(NoBackoff(), 0),
        client_name=name,
        decode_responses=False,
    )
