"""The intake consumer's publish on one control plane (SQLite): what SDK votes, comments and
submissions changed is a project's public board, which no environment's build reads.

Published as :meth:`control_plane.publisher.Publisher.publish_projects` alone would publish
them, every environment of the project would be built whole (about 10 s of CPU per intake batch
at 100,000 flags, issue 21). Instead the projects are validated as a write that touches no
feature (``control_plane.incremental``: the kept build is patched with what the context's
change reaches, timed features included), in a transaction of their own under the store lock
the consumer holds, so no write comes between the intake's commit and this publish. On
PostgreSQL the replicas' leader does the same from the outbox rows the intake records
(``Replication.enqueue``)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from control_plane.incremental import Builder
from control_plane.publisher import Publisher
from control_plane.snapshots import EnvironmentState
from control_plane.store import Store

log = logging.getLogger("control_plane.board_publish")


def board_publisher(store: Store, builder: Builder, publisher: Publisher) -> Callable[[set[str]], int]:
    """The ``publish`` of :func:`control_plane.events_consumer.start_consumer_thread`."""

    def publish(project_ids: set[str]) -> int:
        documents: dict[str, EnvironmentState] | None = None
        with store.exclusive():
            try:
                with store.transaction() as db:
                    documents = builder.validate_projects(db, project_ids, dict.fromkeys(project_ids, ()))
                builder.committed()
            except Exception:
                # Not a reason to leave the boards unpublished: built whole, as before.
                log.exception("patching %d project(s) for their boards failed; building them whole", len(project_ids))
                documents = None
            return publisher.publish_projects(project_ids, documents)

    return publish
