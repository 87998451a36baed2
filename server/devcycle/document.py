"""What the edge keeps of an environment's ``devcycle`` section, derived once per snapshot version.

The control plane publishes, per environment, the DevCycle server SDK config (the document
``/config/v2/server/{sdkKey}.json`` serves and ``@devcycle/bucketing`` reads) as the
``devcycle`` member of the environment document, with every feature whatever its visibility;
the evaluator compiles the same section for bucketing (``Snapshot.devcycle_json``). From it,
:func:`devcycle_document` derives:

* the config bodies served to local-bucketing server SDKs, per SDK kind (DevCycle's
  ``sdkVisibility``: a server key gets the features visible to server SDKs, the client bootstrap
  config those visible to client SDKs), without any ``sse`` the section may carry (the edge adds
  its own stream per request, :mod:`server.devcycle.config`) and without the visibility flags
  themselves (the SDKs' config has no such field);
* the ``_id`` of the features hidden from each kind, which the bucketing routes and OFREP leave
  out for keys of that kind;
* whether the environment has DevCycle variables at all: then OFREP serves its variables.

A feature's visibility is the document's ``sdkVisibility`` (``control_plane.devcycle_config``):
``{feature key: {"client"?: false, "mobile"?: false, "server"?: false}}`` for the features
hidden from some kind of SDK key; a kind it does not name sees the feature.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from contract.sdk_keys import KINDS, Kind

# What the edge removes from the config it serves (it adds its own ``sse``).
NOT_SERVED = ("sse",)
VISIBILITY = "sdkVisibility"


@dataclass(frozen=True)
class DevCycleDocument:
    # Config JSON per SDK kind (features visible to that kind), without ``sse``.
    configs: Mapping[Kind, bytes]
    # SDK kind → ``_id`` of the features hidden from it.
    hidden: Mapping[Kind, frozenset[str]]
    # Whether any variable is defined (OFREP serves DevCycle variables then).
    has_variables: bool


Visibility = Mapping[str, Any]


def _visible(feature: Mapping[str, Any], kind: str, visibility: Visibility) -> bool:
    flags = visibility.get(str(feature.get("key")))
    return not (isinstance(flags, dict) and flags.get(kind) is False)


def _variable_ids(feature: Mapping[str, Any]) -> set[str]:
    ids: set[str] = set()
    for variation in feature.get("variations") or []:
        if not isinstance(variation, dict):
            continue
        for variable in variation.get("variables") or []:
            if isinstance(variable, dict) and isinstance(variable.get("_var"), str):
                ids.add(variable["_var"])
    return ids


def config_for(section: dict[str, Any], kind: str, visibility: Visibility) -> dict[str, Any]:
    """The config a ``kind`` SDK gets: the features visible to it, and the variables they use
    (a variable used only by hidden features is not announced either)."""
    features = [f for f in section.get("features") or [] if isinstance(f, dict)]
    visible = [f for f in features if _visible(f, kind, visibility)]
    config = {k: v for k, v in section.items() if k not in NOT_SERVED}
    config["features"] = visible
    if len(visible) != len(features) and isinstance(section.get("variables"), list):
        used = set().union(*(_variable_ids(f) for f in visible)) if visible else set()
        hidden = [f for f in features if not _visible(f, kind, visibility)]
        hidden_only = set().union(*(_variable_ids(f) for f in hidden)) - used
        config["variables"] = [
            v for v in section["variables"] if not (isinstance(v, dict) and v.get("_id") in hidden_only)
        ]
    return config


def devcycle_document(document: Mapping[str, Any]) -> DevCycleDocument | None:
    """The edge's view of an environment document's DevCycle section (None without one)."""
    section = document.get("devcycle")
    if not isinstance(section, dict):
        return None
    visibility = document.get(VISIBILITY)
    if not isinstance(visibility, dict):
        visibility = {}
    features = [f for f in section.get("features") or [] if isinstance(f, dict)]
    hidden = {
        kind: frozenset(str(f["_id"]) for f in features if "_id" in f and not _visible(f, kind, visibility))
        for kind in KINDS
    }
    configs = {kind: orjson.dumps(config_for(section, kind, visibility)) for kind in KINDS}
    variables = section.get("variables")
    return DevCycleDocument(configs, hidden, bool(variables) and isinstance(variables, list))
