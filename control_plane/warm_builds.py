"""After a start, the builds a write patches are made on a thread, not by the first write.

A control plane keeps, per project, the build its last write made (``control_plane.incremental``);
a start keeps nothing, so without this the first write to a project builds and compiles it whole
(11-21 s at 100,000 flags). :class:`Warmer` builds every project once after the start, largest
first, each in one read-only snapshot of the database on a connection of its own
(``Store.snapshot``): writes and reads go on meanwhile. Each build records the project's build
generation it read (``control_plane.build_generations``), so a write patches it only if no write
came between; a write that finds its project's warm-up under way at that generation waits for it
(it is the same whole build the write would make, already started).
"""

from __future__ import annotations

import logging
import threading
import time

from control_plane.incremental import Builder
from control_plane.store import Store

log = logging.getLogger("control_plane.warm_builds")


class Warmer:
    """Warms ``builder`` with every project of ``store`` on a thread (:meth:`start`)."""

    def __init__(self, store: Store, builder: Builder) -> None:
        self.store = store
        self.builder = builder
        self._halt = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="warm-builds", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the project being built (a build is not interrupted)."""
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Until every project is warmed (True) or ``timeout`` seconds pass (False)."""
        return self._done.wait(timeout)

    def _run(self) -> None:
        try:
            started = time.monotonic()
            with self.store.read() as db:
                # The largest first: they are the ones a whole build makes slow.
                rows = db.execute(
                    "SELECT p.id FROM projects p ORDER BY"
                    " (SELECT COUNT(*) FROM features f WHERE f.project_id = p.id) DESC, p.id"
                ).fetchall()
            warmed = 0
            for row in rows:
                if self._halt.is_set():
                    return
                try:
                    with self.store.snapshot() as db:
                        self.builder.warm(db, row["id"])
                    warmed += 1
                except Exception:
                    # That project's first write builds it whole, as without a warm-up.
                    log.exception("warming up the build of project %s failed", row["id"])
            if warmed:
                log.info("warmed up the builds of %d project(s) in %.1f s", warmed, time.monotonic() - started)
        except Exception:
            log.exception("warming up the builds failed; first writes build their projects whole")
        finally:
            self._done.set()
