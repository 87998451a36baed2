"""wrk with every status counted (and 503/429 answers lacking ``Retry-After``), optionally paced
to a fixed rate: the load of the soak runs (:mod:`bench.soak`, :mod:`bench.soak_faults`).

:func:`wrk` appends Lua hooks to a request script that count statuses per thread, space each
connection's requests to reach a target rate, and print one JSON line (:data:`MARK`) that is
parsed into a :class:`Load`; :func:`peak` is a closed-loop run that measures the edge's peak.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench import wrk as wrk_tool
from bench.stack import LOAD_CPU

MARK = "SOAK_JSON "

# Appended to a request script: counts every status (and 503s without Retry-After) per thread,
# optionally paces the requests to a fixed rate, and prints one JSON line at the end.
_HOOKS = r"""
local _threads = {}
local _setup = setup
function setup(thread)
  if _setup then _setup(thread) end
  table.insert(_threads, thread)
end

statuses = {}
no_retry_after = 0
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 503 or status == 429 then
    if headers["Retry-After"] == nil and headers["retry-after"] == nil then
      no_retry_after = no_retry_after + 1
    end
  end
end

-- Open-loop pacing: each thread hands out send times INTERVAL ms apart to whichever of
-- its connections is free (a slot missed because every connection was busy is skipped).
local _interval = %INTERVAL_MS%
if _interval > 0 then
  local ffi = require("ffi")
  ffi.cdef[[
    typedef struct { long tv_sec; long tv_nsec; } soak_timespec;
    int clock_gettime(int clk, soak_timespec *tp);
  ]]
  local ts = ffi.new("soak_timespec")
  local next_slot = 0
  function delay()
    ffi.C.clock_gettime(1, ts)
    local now = tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
    if next_slot < now then next_slot = now end
    local wait = next_slot - now
    next_slot = next_slot + _interval
    return math.floor(wait + 0.5)
  end
end

function done(summary, latency, requests)
  local parts = {}
  local missing = 0
  local merged = {}
  for _, t in ipairs(_threads) do
    local s = t:get("statuses") or {}
    for k, v in pairs(s) do merged[k] = (merged[k] or 0) + v end
    missing = missing + (t:get("no_retry_after") or 0)
  end
  for k, v in pairs(merged) do table.insert(parts, string.format('"%d":%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"no_retry_after":%d,"statuses":{%s}}\n',
    "%MARK%", summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, missing,
    table.concat(parts, ",")))
end
"""


@dataclass(frozen=True)
class Load:
    """One wrk run: what the edge answered and how fast."""

    connections: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    # HTTP status → count.
    statuses: dict[int, int]
    # Connect/read/write errors and requests that got no answer within wrk's --timeout.
    socket_errors: int
    timeouts: int
    # 503/429 answers without a Retry-After header.
    no_retry_after: int

    def count(self, *codes: int) -> int:
        return sum(self.statuses.get(c, 0) for c in codes)

    @property
    def ok(self) -> int:
        return self.count(200, 304)

    @property
    def failed(self) -> int:
        """Everything but 200/304: other statuses, socket errors, timeouts."""
        return self.requests - self.ok + self.socket_errors

    @property
    def shed_share(self) -> float:
        return self.count(503) / self.requests if self.requests else 0.0

    def line(self) -> str:
        return (
            f"c={self.connections} {self.rps:.0f} req/s p50 {self.p50_ms:.1f} ms p99 {self.p99_ms:.1f} ms "
            f"max {self.max_ms:.0f} ms statuses {self.statuses} socket errors {self.socket_errors} "
            f"timeouts {self.timeouts} ({100 * self.shed_share:.1f} % 503)"
        )


def wrk(
    url: str,
    script: str,
    connections: int,
    seconds: float,
    *,
    rate: float = 0,
    timeout_s: float = 10,
    threads: int = 2,
    cpu: int | None = LOAD_CPU,
) -> Load:
    """Run wrk with ``script`` (its ``request()`` builds each request) plus the status hooks.

    ``rate`` > 0 offers that many requests per second whatever the answers' latency (as long as
    a connection is free); 0 is closed-loop, every connection sending as fast as it is answered.
    """
    threads = min(threads, connections)
    interval = f"{threads * 1000 / rate:.4f}" if rate > 0 else "0"
    body = script + "\n" + _HOOKS.replace("%INTERVAL_MS%", interval).replace("%MARK%", MARK)
    raw = wrk_tool.invoke(url, body, MARK, connections, seconds, threads, cpu, timeout_s)
    duration = raw["duration_us"] / 1e6
    return Load(
        connections=connections,
        seconds=round(duration, 2),
        requests=raw["requests"],
        rps=round(raw["requests"] / duration, 1) if duration else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        statuses={int(k): v for k, v in raw["statuses"].items()},
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        timeouts=raw["timeout"],
        no_retry_after=raw["no_retry_after"],
    )


def peak(url: str, script: str, seconds: float = 5, connections: int = 64) -> Load:
    """Closed-loop throughput (after a 1 s warm-up)."""
    wrk(url, script, connections, 1)
    return wrk(url, script, connections, seconds)
