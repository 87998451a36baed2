"""The self-targeting overrides of one environment, as its snapshot carries them.

``devcycleOverrides`` (a top-level member of the environment document, beside ``devcycle``):
``{dvcUserId: {feature _id: variation _id}}`` for every team member whose profile names an SDK
user id and who overrides a feature there. The evaluator applies it after DevCycle's bucketing,
as DevCycle's ``generateBucketedConfig(..., overrides)`` does: a request whose DevCycle
``user_id`` (Reflag/OFREP: ``user.id``/``targetingKey``) is a key gets those variations, with
reason ``OVERRIDE``, on every route that the edge evaluates (bucketing API, client SDK config,
OFREP, ``/features/evaluated``). The member is kept out of ``devcycle`` because that section is
the config local-bucketing SDKs download: DevCycle does not send overrides to them either (their
WASM bucketing takes none), and SDK user ids of team members are not for every server SDK.

Only features DevCycle's bucketing decides on the edge (those in ``devcycle``) can be overridden;
the evaluator ignores an override of any other feature, as DevCycle ignores overrides that do not
match the config. Archived features are not in the config, so their overrides are inert.
"""

from __future__ import annotations

from control_plane.dialect import Connection

MEMBER = "devcycleOverrides"


def environment_overrides(db: Connection, environment_id: str) -> dict[str, dict[str, str]]:
    """``{dvcUserId: {feature id: variation id}}`` of one environment (module doc), sorted."""
    out: dict[str, dict[str, str]] = {}
    for r in db.execute(
        "SELECT p.dvc_user_id, o.feature_id, o.variation_id FROM feature_overrides o"
        " JOIN user_profiles p ON p.project_id = o.project_id AND p.user_id = o.user_id"
        " WHERE o.environment_id = ? AND p.dvc_user_id IS NOT NULL"
        " ORDER BY p.dvc_user_id, o.feature_id",
        (environment_id,),
    ):
        out.setdefault(r["dvc_user_id"], {})[r["feature_id"]] = r["variation_id"]
    return out
