"""The edge's evaluation counts: what each worker evaluated, shipped as ``evaluation-counts``
intake records (``contract.intake.EVALUATION_COUNTS``) for DevCycle's ``results/evaluations``.

Counting costs a request no I/O: every compiled snapshot counts its own evaluations in memory
(the evaluator's ``counts`` module; ``Snapshot.drain_counts``). Every ``--evaluation-counts-
interval`` seconds (and when the worker stops) :class:`EvaluationCounts` drains the snapshots the
worker serves (one that a new view replaces is drained at the swap) and enqueues one record per
environment through the event intake (``EventIntake.enqueue``: the Redis stream or the spool),
stamped with the current UTC hour. An interval of 0 turns counting off (snapshots then keep no
counters).

A record the intake refuses (a full spool: 503) is not lost: its counts stay pending and go with
the next flush. Counts of a worker killed with ``-9`` since its last flush are lost (at most one
interval's worth): they are statistics, not acknowledged events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime

import evaluator
from contract import intake
from contract.intake import EVALUATION_COUNTS, event_id
from server.errors import EdgeError
from server.events import EventIntake, now_iso
from server.state import EdgeState, Environment, View

log = logging.getLogger("server.evaluation_counts")

# The record's key kind: the edge evaluates for every kind of key at once, as DevCycle's
# bucketing API does, and the control plane files it under that SDK type.
KEY_KIND = "api"

# (environment id, hour) → (feature key, variation key) → evaluations, not yet enqueued.
Pending = dict[tuple[str, str], Counter[tuple[str, str]]]


def current_hour() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:00:00.000Z")


class EvaluationCounts:
    """One worker's flusher of evaluation counts (see the module docstring)."""

    def __init__(self, state: EdgeState, events: EventIntake, interval: float) -> None:
        self.state = state
        self.events = events
        self.interval = interval
        self.enabled = interval > 0
        # Before the first snapshot compiles: a worker that does not count keeps no counters.
        evaluator.set_counting(self.enabled)
        self.pending: Pending = {}
        self.projects: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None
        if self.enabled:
            state.on_swap.append(self.retire)

    def retire(self, previous: View, view: View) -> None:
        """Drain the snapshots a new view replaced, now: holding them until the next flush would
        keep every compiled version of a busy interval in memory."""
        replaced = [
            env
            for env_id, env in previous.environments.items()
            if (now := view.environments.get(env_id)) is None or now.snapshot is not env.snapshot
        ]
        self.drain(replaced)

    def collect(self) -> None:
        """Drain every snapshot served into :attr:`pending`."""
        self.drain(self.state.view.environments.values())

    def drain(self, environments: Iterable[Environment]) -> None:
        hour = current_hour()
        for env in environments:
            drained = env.snapshot.drain_counts()
            if not drained:
                continue
            self.projects[env.id] = env.project
            counts = self.pending.setdefault((env.id, hour), Counter())
            for feature, variation, n in drained:
                counts[feature, variation] += n

    def records(self) -> list[tuple[str, bytes]]:
        received = now_iso()
        out = []
        for (env_id, hour), counts in self.pending.items():
            record_id = event_id(env_id, None)
            event = {
                "hour": hour,
                "counts": [{"feature": f, "variation": v, "count": n} for (f, v), n in counts.items()],
            }
            record = intake.record(
                record_id=record_id,
                kind=EVALUATION_COUNTS,
                environment=env_id,
                project=self.projects.get(env_id) or None,
                key_kind=KEY_KIND,
                received_at=received,
                dedup_id=None,
                event=event,
            )
            out.append((record_id, record))
        return out

    async def flush(self) -> None:
        """Enqueue what was counted; on a refusal keep it for the next flush."""
        self.collect()
        if not self.pending:
            return
        try:
            await self.events.enqueue(self.records())
        except EdgeError as e:
            log.warning("evaluation counts kept for the next flush: the intake refused them (%s)", e.message)
            return
        self.pending = {}

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:
                log.exception("flushing evaluation counts failed; retrying in %.1fs", self.interval)

    def start(self) -> None:
        if self.enabled:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop the periodic flush and flush what is left (a worker shutting down)."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        await self.flush()
