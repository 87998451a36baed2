"""Which features of an environment a change of the project's audiences reaches.

A flag inlines the audiences its configuration references (``features_snapshot.translate_filter``,
through audiences that reference audiences), and a feature's DevCycle part reads whether they are
DevCycle-readable (``devcycle_config.devcycle_audiences``); nothing else of a feature's build
reads audiences. So after an audience write only the features whose configuration here
references a changed audience, or one that references it (at any depth), are built again
(``control_plane.incremental``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from control_plane.dialect import Connection
from control_plane.features_snapshot import audience_refs

# Audience ids per statement (each is two LIKE parameters).
CHUNK = 200


def changed_audiences(
    new: Mapping[str, Any], old: Mapping[str, Any], new_readable: Mapping[str, bool], old_readable: Mapping[str, bool]
) -> set[str]:
    """The audiences whose tree or readability differs, and every audience that references one
    of them (in its tree before or after), at any depth."""
    changed = {a for a in new.keys() | old.keys() if new.get(a) != old.get(a)}
    changed |= {a for a in new_readable.keys() | old_readable.keys() if new_readable.get(a) != old_readable.get(a)}
    refs = {a: set(audience_refs(new.get(a))) | set(audience_refs(old.get(a))) for a in new.keys() | old.keys()}
    grown = bool(changed)
    while grown:
        grown = False
        for audience, referenced in refs.items():
            if audience not in changed and referenced & changed:
                changed.add(audience)
                grown = True
    return changed


def features_referencing(db: Connection, environment_id: str, audience_ids: set[str]) -> set[str]:
    """The features whose configuration in the environment mentions any of the audiences (the
    stored filters name an audience by its id: a text match finds every reference, and at most
    a few features more, which are then built again for nothing)."""
    ids = sorted(audience_ids)
    out: set[str] = set()
    for chunk in [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]:
        matches = " OR ".join(["targets LIKE ? OR reflag LIKE ?"] * len(chunk))
        params = [pattern for a in chunk for pattern in (f"%{a}%", f"%{a}%")]
        rows = db.execute(
            f"SELECT feature_id FROM feature_configurations WHERE environment_id = ? AND ({matches})",
            (environment_id, *params),
        )
        out.update(r["feature_id"] for r in rows)
    return out
