"""Drive wrk (a compiled HTTP load generator) from Python and read its numbers back as data.

Locust rounds latencies to whole milliseconds; the edge answers in well under one, so peak
throughput and latency percentiles come from wrk. Each request is built by a Lua ``request()``
hook (unique contexts per request), and a ``done()`` hook prints the summary as one JSON line
that :func:`run` parses, so nothing depends on wrk's human-readable table.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.processes import pinned

RESULT_MARK = "WRK_JSON "

# Appended to every script: wrk calls it once with the merged statistics of all threads.
_DONE_HOOK = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    "%MARK%", summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
""".replace("%MARK%", RESULT_MARK)


@dataclass(frozen=True)
class WrkResult:
    connections: int
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    # Socket errors plus answers outside 2xx/3xx (wrk counts 304 as success).
    errors: int
    non_2xx_3xx: int
    timeouts: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Every wrk script's per-thread seeding: each thread draws its own reproducible sequence of
# contexts (wrk runs setup() per thread in the main Lua state, init() in the thread's own).
LUA_THREADS = r"""
function setup(thread)
  _G.thread_no = (_G.thread_no or 0) + 1
  thread:set("base", _G.thread_no * 100000000)
end

function init(args)
  base = base or 0
  math.randomseed(base + 7)
end
"""


def ensure_wrk() -> str:
    """The wrk binary; installed with apt-get when missing (the suite runs as root on Debian)."""
    found = shutil.which("wrk")
    if found:
        return found
    for args in (["apt-get", "install", "-y", "wrk"], ["apt-get", "update"], ["apt-get", "install", "-y", "wrk"]):
        subprocess.run(args, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        found = shutil.which("wrk")
        if found:
            return found
    raise RuntimeError("wrk is not installed and apt-get could not install it")


def version() -> str:
    """wrk's own version line, e.g. ``wrk debian/4.1.0-3+b2 [epoll]``."""
    out = subprocess.run([ensure_wrk(), "-v"], capture_output=True, text=True)
    return (out.stdout or out.stderr).splitlines()[0].split(" Copyright")[0].strip()


def invoke(
    url: str,
    script: str,
    mark: str,
    connections: int,
    duration_s: float,
    threads: int,
    cpu: int | None,
    timeout_s: float,
) -> dict[str, Any]:
    """Run wrk with the complete Lua ``script`` and parse the JSON line it prints after ``mark``
    (its ``done()`` hook's summary); RuntimeError if wrk fails or prints none."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        path = Path(f.name)
    try:
        cmd = [ensure_wrk(), "-t", str(min(threads, connections)), "-c", str(connections)]
        cmd += [
            "-d",
            f"{max(1, round(duration_s))}s",
            "--timeout",
            f"{max(1, round(timeout_s))}s",
            "-s",
            str(path),
            url,
        ]
        out = subprocess.run(pinned(cmd, cpu), capture_output=True, text=True, timeout=duration_s + 60)
    finally:
        path.unlink(missing_ok=True)
    line = next((x for x in out.stdout.splitlines() if x.startswith(mark)), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    raw: dict[str, Any] = json.loads(line.removeprefix(mark))
    return raw


def run(
    url: str,
    script: str,
    connections: int,
    duration_s: float,
    threads: int = 1,
    cpu: int | None = 1,
    timeout_s: float = 5.0,
) -> WrkResult:
    """Run wrk against ``url`` with the Lua ``script`` (its ``request()`` builds each request)."""
    raw = invoke(url, script + "\n" + _DONE_HOOK, RESULT_MARK, connections, duration_s, threads, cpu, timeout_s)
    seconds = raw["duration_us"] / 1e6
    socket_errors = raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"]
    return WrkResult(
        connections=connections,
        requests=raw["requests"],
        duration_s=round(seconds, 3),
        rps=round(raw["requests"] / seconds, 1) if seconds else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        p999_ms=raw["p999_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        errors=socket_errors + raw["status_errors"],
        non_2xx_3xx=raw["status_errors"],
        timeouts=raw["timeouts"],
    )


def lua_string(value: str) -> str:
    """A Lua string literal (JSON escaping is a subset Lua 5.1 reads, for the ASCII we send)."""
    return json.dumps(value)
