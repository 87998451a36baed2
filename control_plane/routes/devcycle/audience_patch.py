"""DevCycle's semantic patch of an audience (``PATCH /v1/semantic/projects/{project}/audiences/{key}``):
``{"instructions": [{"op": "addFilterValues" | "removeFilterValues", "action": {"filterIndex",
"values"}}]}``.

``filterIndex`` names a filter of the audience's top-level group by position (``"1"``), or one
inside nested groups by a dotted path (``"1.0"``); ``values`` are added to that filter's
``values`` (once each, in order) or removed from them. The result goes through the audience
PATCH (:func:`audiences.apply_audience_update`): validated, recompiled with every configuration
that uses it, audited, published as one change.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import Field

from control_plane.errors import validation
from control_plane.http import Ctx, Write
from control_plane.routes.devcycle.audiences import apply_audience_update, audience_row
from control_plane.routes.devcycle.common import ORG, DvBody, Strict, dv_router, loads, write_project
from control_plane.routes.devcycle.models import UpdateAudience

router = dv_router("devcycle-audiences")

Value = str | int | float | bool


class PatchAction(Strict):
    filterIndex: str = Field(min_length=1, max_length=100, pattern=r"^\d{1,4}(\.\d{1,4}){0,15}$")
    values: list[Value] = Field(max_length=1000)


class PatchInstruction(Strict):
    op: Literal["addFilterValues", "removeFilterValues"]
    action: PatchAction


class AudiencePatch(DvBody):
    instructions: list[PatchInstruction] = Field(min_length=1, max_length=100)


def _node(filters: dict[str, Any], index: str, field: str) -> dict[str, Any]:
    node: Any = filters
    for step in index.split("."):
        children = node.get("filters") if isinstance(node, dict) else None
        if not isinstance(children, list) or int(step) >= len(children):
            raise validation(f"the audience has no filter at index {index}", field, "unknown_filter")
        node = children[int(step)]
    # Only a filter that has values takes them ("all", groups and exist/!exist comparators do not).
    if not isinstance(node, dict) or not isinstance(node.get("values"), list):
        raise validation(f"the filter at index {index} takes no values", field, "no_values")
    return node


def apply_instructions(filters: dict[str, Any], instructions: list[PatchInstruction]) -> dict[str, Any]:
    out = copy.deepcopy(filters)
    for i, ins in enumerate(instructions):
        node = _node(out, ins.action.filterIndex, f"instructions[{i}].action.filterIndex")
        values: list[Any] = list(node.get("values", []))
        if ins.op == "addFilterValues":
            values += [v for v in ins.action.values if v not in values]
        else:
            values = [v for v in values if v not in ins.action.values]
        node["values"] = values
    return out


@router.route(
    "PATCH",
    "/v1/semantic/projects/{project}/audiences/{key}",
    summary="Add or remove values of an audience's filters (semantic patch)",
    body=AudiencePatch,
    headers=ORG,
)
async def semantic_patch_audience(ctx: Ctx) -> Any:
    body: AudiencePatch = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        a = audience_row(w.db, access.id, ctx.path("key"))
        filters = apply_instructions(loads(a["filters"], {}), body.instructions)
        return apply_audience_update(w, access, a, UpdateAudience.model_construct(filters=filters))

    return ctx.commit(change)
