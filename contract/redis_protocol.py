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

* ``flagedge:term``: a hash ``{epoch: E, since: S}``, the fencing of several publishers (control-plane
  replicas on one PostgreSQL, one publishing at a time): E is the highest leadership epoch (fencing
  token, taken from PostgreSQL with the publish lock) that wrote or claimed, S the newest version
  Redis held when that term began (:data:`CLAIM_SCRIPT`).

Writes are Lua scripts, so a change set, the version bump and the announcement are one atomic step:
a subscriber that hears ``N`` finds ``flagedge:change:{N}`` (unless it has already expired).

Fencing: a write that carries an epoch is refused (:data:`DEPOSED`) when a higher epoch has written
or claimed, so a publisher that lost its lock (partition, pause, its PostgreSQL session gone) but
still reaches Redis cannot store anything; and a term writes only above the version Redis held when
it began (else :data:`BEHIND`), so its versions never share a number with an older term's and
followers, which apply change sets strictly in order, never apply one term's change set on another
term's state. The announced version is only ever raised. A write without an epoch (the single
SQLite control plane, whose data dir lock is its fence) is not checked. ``sync`` reads none of
this: it sees only versions, change sets and full states that passed it.
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

# The outcome of a write script (its first result): stored, or refused and why.
STORED = 0
DEPOSED = 1  # a higher epoch wrote or claimed: this publisher's term is over
BEHIND = 2  # at or below the version Redis held when this term began: go above it (a full state)

# Fencing, the start of every write script. KEYS[1]: term, KEYS[2]: version, KEYS[3]: full;
# ARGV[1]: the version written, ARGV[2]: the writer's epoch ('' = unfenced). A first write of a
# higher epoch claims the term (as CLAIM_SCRIPT does); sets ``refused`` to DEPOSED or BEHIND.
_FENCE = """
local n = tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
local refused = nil
local epoch = tonumber(ARGV[2])
if epoch then
  local held = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
  if epoch < held then
    refused = 1
  else
    if epoch > held then
      local full = tonumber(redis.call('HGET', KEYS[3], 'version') or '0')
      redis.call('HSET', KEYS[1], 'epoch', ARGV[2], 'since', math.max(cur, full))
    end
    if n <= tonumber(redis.call('HGET', KEYS[1], 'since') or '0') then refused = 2 end
  end
end
"""

# KEYS: term, version, full, index, change, sizes. ARGV: N, epoch, blob, ttl seconds, versions to
# keep, change key prefix, channel, bytes to keep. Trims the oldest change sets (expired, or over
# either bound; the newest always stays) and announces N if it is newer. Returns {outcome, the
# announced version}.
CHANGE_SCRIPT = (
    _FENCE
    + """
if refused then return {refused, cur} end
redis.call('SET', KEYS[5], ARGV[3], 'EX', tonumber(ARGV[4]))
redis.call('ZADD', KEYS[4], n, ARGV[1])
-- A retried push of the same version replaces its size in the ledger instead of adding it twice.
local previous = tonumber(redis.call('HGET', KEYS[6], ARGV[1]) or '0')
redis.call('HSET', KEYS[6], ARGV[1], string.len(ARGV[3]))
local total = redis.call('HINCRBY', KEYS[6], 'total', string.len(ARGV[3]) - previous)
local max_versions = tonumber(ARGV[5])
local max_bytes = tonumber(ARGV[8])
while redis.call('ZCARD', KEYS[4]) > 1 do
  local oldest = redis.call('ZRANGE', KEYS[4], 0, 0)[1]
  local expired = redis.call('EXISTS', ARGV[6] .. oldest) == 0
  if not (expired or total > max_bytes or redis.call('ZCARD', KEYS[4]) > max_versions) then break end
  redis.call('DEL', ARGV[6] .. oldest)
  redis.call('ZREM', KEYS[4], oldest)
  local size = tonumber(redis.call('HGET', KEYS[6], oldest) or '0')
  redis.call('HDEL', KEYS[6], oldest)
  total = redis.call('HINCRBY', KEYS[6], 'total', -size)
end
if n > cur then
  redis.call('SET', KEYS[2], ARGV[1])
  redis.call('PUBLISH', ARGV[7], ARGV[1])
  return {0, n}
end
return {0, cur}
"""
)

# KEYS: term, version, full. ARGV: M, epoch, blob, channel. Returns {outcome, the announced
# version before this call}.
FULL_SCRIPT = (
    _FENCE
    + """
if refused then return {refused, cur} end
local have = tonumber(redis.call('HGET', KEYS[3], 'version') or '-1')
if n > have then
  redis.call('HSET', KEYS[3], 'version', ARGV[1], 'data', ARGV[3])
end
if n > cur then
  redis.call('SET', KEYS[2], ARGV[1])
  redis.call('PUBLISH', ARGV[4], ARGV[1])
end
return {0, cur}
"""
)

# A new term's claim, before it writes anything. KEYS: term, version, full. ARGV: epoch. Returns
# {outcome, the version the term must write above}: DEPOSED (and the epoch that holds) when a
# higher epoch claimed already;
# else the term is this epoch's from now on, and older epochs' writes are refused.
CLAIM_SCRIPT = """
local epoch = tonumber(ARGV[1])
local held = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
if epoch < held then return {1, held} end
if epoch > held then
  local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
  local full = tonumber(redis.call('HGET', KEYS[3], 'version') or '0')
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'since', math.max(cur, full))
end
return {0, tonumber(redis.call('HGET', KEYS[1], 'since') or '0')}
"""


def outcome(reply: Any) -> tuple[int, int]:
    """A write or claim script's reply: (outcome, version)."""
    status, version = reply
    return int(status), int(version)


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
    def term(self) -> str:
        """Hash ``{epoch, since}``: the fencing of several publishers (module docstring)."""
        return f"{self.prefix}:term"

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
