"""Find or install the peers' binaries, each pinned to the version the benchmark names.

Order for each peer: a path given on the command line; the binary installed by an earlier run
in the cache directory (``~/.cache/flagedge-peers`` unless ``--cache``); then the package
registry: Unleash Edge with ``cargo install unleash-edge --version ~20.1 --locked`` (default
features off: they only add S3 persistence, which an offline Edge never uses), flagd and the
go-feature-flag relay proxy with ``go install <module>@<version>``. When the Go module proxy
refuses a module (it does for both on some networks), a source checkout of the release tag can
be given instead (``--flagd-source``, ``--gofeatureflag-source``): it is built with
``go build``, its in-repository modules (flagd's ``core``, go-feature-flag's ``modules/core``)
taken from the checkout rather than from the proxy.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "flagedge-peers"

UNLEASH_EDGE_VERSION = "20.1"
FLAGD_VERSION = "v0.16.1"
GOFEATUREFLAG_VERSION = "v1.55.2"

FLAGD_MODULE = "github.com/open-feature/flagd/flagd"
GOFEATUREFLAG_MODULE = "github.com/thomaspoignant/go-feature-flag/cmd/relayproxy"
_VERSION = re.compile(r"\bv?\d+\.\d+\.\d+\b")


class PeerUnavailable(RuntimeError):
    """A peer could be neither found nor installed; the message says how to provide it."""


@dataclass(frozen=True)
class Binaries:
    unleash_edge: Path | None
    flagd: Path | None
    gofeatureflag: Path | None


def _run(cmd: list[str], log: Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> bool:
    print(f"   $ {' '.join(cmd)}  (log: {log})", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        done = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    return done.returncode == 0


def _given(path: Path | None, name: str) -> Path | None:
    if path is None:
        return None
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise PeerUnavailable(f"{name}: {path} is not an executable file")
    return path


def unleash_edge(cache: Path, given: Path | None = None) -> Path:
    found = _given(given, "unleash-edge")
    if found:
        return found
    root = cache / f"unleash-edge-{UNLEASH_EDGE_VERSION}"
    binary = root / "bin" / "unleash-edge"
    if binary.exists():
        return binary
    if shutil.which("cargo") is None:
        raise PeerUnavailable("unleash-edge: cargo is not installed; give --unleash-edge PATH")
    cmd = ["cargo", "install", "unleash-edge", "--version", f"~{UNLEASH_EDGE_VERSION}", "--locked"]
    cmd += ["--no-default-features", "--root", str(root)]
    if not _run(cmd, cache / "unleash-edge-build.log") or not binary.exists():
        raise PeerUnavailable(f"unleash-edge: cargo install failed, see {cache / 'unleash-edge-build.log'}")
    return binary


def _go_env(cache: Path) -> dict[str, str]:
    # The machine's own Go: a toolchain line in a go.mod must not download another one.
    return {"GOPATH": str(cache / "gopath"), "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}


def _go_install(cache: Path, module: str, version: str, name: str, binary: Path) -> bool:
    if shutil.which("go") is None:
        return False
    gobin = cache / f"gobin-{name}"
    ok = _run(
        ["go", "install", f"{module}@{version}"],
        cache / f"{name}-build.log",
        env={**_go_env(cache), "GOBIN": str(gobin)},
    )
    built = gobin / module.rsplit("/", 1)[-1]
    if ok and built.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(built, binary)
        return True
    return False


def _replace_local(module_dir: Path, module: str, local: Path) -> None:
    """Point ``module_dir``'s go.mod at the checkout's own copy of ``module`` (a sibling module the
    proxy may refuse)."""
    subprocess.run(["go", "mod", "edit", "-replace", f"{module}={local}"], cwd=module_dir, check=True)


def flagd(cache: Path, given: Path | None = None, source: Path | None = None) -> Path:
    found = _given(given, "flagd")
    if found:
        return found
    binary = cache / "bin" / f"flagd-{FLAGD_VERSION}"
    if binary.exists():
        return binary
    if source is not None:
        _replace_local(source / "flagd", "github.com/open-feature/flagd/core", source / "core")
        cmd = ["go", "build", "-ldflags", f"-X main.version={FLAGD_VERSION}", "-o", str(binary), "."]
        if _run(cmd, cache / "flagd-build.log", cwd=source / "flagd", env=_go_env(cache)):
            return binary
        raise PeerUnavailable(f"flagd: building {source} failed, see {cache / 'flagd-build.log'}")
    if _go_install(cache, FLAGD_MODULE, FLAGD_VERSION, "flagd", binary):
        return binary
    raise PeerUnavailable(
        f"flagd: `go install {FLAGD_MODULE}@{FLAGD_VERSION}` failed (see {cache / 'flagd-build.log'}); give "
        "--flagd PATH, or --flagd-source DIR with a checkout of the flagd/v0.16.1 tag of open-feature/flagd"
    )


def gofeatureflag(cache: Path, given: Path | None = None, source: Path | None = None) -> Path:
    found = _given(given, "relayproxy")
    if found:
        return found
    binary = cache / "bin" / f"relayproxy-{GOFEATUREFLAG_VERSION}"
    if binary.exists():
        return binary
    if source is not None:
        _replace_local(source, "github.com/thomaspoignant/go-feature-flag/modules/core", source / "modules" / "core")
        cmd = ["go", "build", "-ldflags", f"-X main.version={GOFEATUREFLAG_VERSION[1:]}", "-o", str(binary)]
        cmd.append("./cmd/relayproxy")
        if _run(cmd, cache / "gofeatureflag-build.log", cwd=source, env=_go_env(cache)):
            return binary
        raise PeerUnavailable(f"relayproxy: building {source} failed, see {cache / 'gofeatureflag-build.log'}")
    if _go_install(cache, GOFEATUREFLAG_MODULE, GOFEATUREFLAG_VERSION, "gofeatureflag", binary):
        return binary
    raise PeerUnavailable(
        f"relayproxy: `go install {GOFEATUREFLAG_MODULE}@{GOFEATUREFLAG_VERSION}` failed (see "
        f"{cache / 'gofeatureflag-build.log'}); give --gofeatureflag PATH, or --gofeatureflag-source DIR with a "
        "checkout of the v1.55.2 tag of thomaspoignant/go-feature-flag"
    )


def version_of(binary: Path, pinned: str) -> str:
    """The version the binary reports (``--version``, else ``version``; banners skipped), else
    the ``pinned`` one it was installed as (the relay proxy prints its version only in a banner)."""
    for args in (["--version"], ["version"]):
        try:
            out = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            continue
        found = _VERSION.search(out.stdout + out.stderr)
        if out.returncode == 0 and found:
            return found.group(0).removeprefix("v")
    return f"{pinned.removeprefix('v')} (as installed)"
