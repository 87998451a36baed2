"""What the edge keeps of an environment's ``devcycle`` section, derived once per snapshot version.

The control plane publishes, per environment, the DevCycle server SDK config (the document
``/config/v2/server/{sdkKey}.json`` serves and ``@devcycle/bucketing`` reads) as the
``devcycle`` section of the environment document; the evaluator compiles the same section for
bucketing (``Snapshot.devcycle_json``). From it, :func:`devcycle_document` derives:

* the config bodies served to local-bucketing server SDKs, per SDK kind (DevCycle's
  ``sdkVisibility``: a server key gets the features visible to server SDKs, the client bootstrap
  config those visible to client SDKs), without any ``sse`` the section may carry (the edge adds
  its own stream per request, :mod:`server.devcycle.config`) and without the visibility flags
  themselves (the SDKs' config has no such field);
* the ``_id`` of the features hidden from each kind, which the bucketing routes and OFREP leave
  out for keys of that kind;
* whether the environment has DevCycle variables at all: then OFREP serves its variables.

A feature's visibility is ``sdkVisibility`` (``{"client", "mobile", "server"}`` booleans, a
missing one visible) on the feature or in its ``settings``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from contract.sdk_keys import KINDS

# What the edge removes from the config it serves (it adds its own ``sse``).
NOT_SERVED = ("sse",)
VISIBILITY = "sdkVisibility"


@dataclass(frozen=True)
class DevCycleDocument:
    # Config JSON per SDK kind (features visible to that kind), without ``sse``.
    configs: Mapping[str, bytes]
    # SDK kind → ``_id`` of the features hidden from it.
    hidden: Mapping[str, frozenset[str]]
    # Whether any variable is defined (OFREP serves DevCycle variables then).
    has_variables: bool


def _visibility(feature: Mapping[str, Any]) -> Mapping[str, Any]:
    found = feature.get(VISIBILITY)
    if not isinstance(found, dict):
        settings = feature.get("settings")
        found = settings.get(VISIBILITY) if isinstance(settings, dict) else None
    return found if isinstance(found, dict) else {}


def _visible(feature: Mapping[str, Any], kind: str) -> bool:
    return _visibility(feature).get(kind) is not False


def _served_feature(feature: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in feature.items() if k != VISIBILITY}
    settings = out.get("settings")
    if isinstance(settings, dict) and VISIBILITY in settings:
        out["settings"] = {k: v for k, v in settings.items() if k != VISIBILITY}
    return out


def _variable_ids(feature: Mapping[str, Any]) -> set[str]:
    ids: set[str] = set()
    for variation in feature.get("variations") or []:
        if not isinstance(variation, dict):
            continue
        for variable in variation.get("variables") or []:
            if isinstance(variable, dict) and isinstance(variable.get("_var"), str):
                ids.add(variable["_var"])
    return ids


def config_for(section: dict[str, Any], kind: str) -> dict[str, Any]:
    """The config a ``kind`` SDK gets: the features visible to it, and the variables they use
    (a variable used only by hidden features is not announced either)."""
    features = [f for f in section.get("features") or [] if isinstance(f, dict)]
    visible = [f for f in features if _visible(f, kind)]
    config = {k: v for k, v in section.items() if k not in NOT_SERVED}
    config["features"] = [_served_feature(f) for f in visible]
    if len(visible) != len(features) and isinstance(section.get("variables"), list):
        used = set().union(*(_variable_ids(f) for f in visible)) if visible else set()
        hidden_only = set().union(*(_variable_ids(f) for f in features if not _visible(f, kind))) - used
        config["variables"] = [
            v for v in section["variables"] if not (isinstance(v, dict) and v.get("_id") in hidden_only)
        ]
    return config


def devcycle_document(section: Any) -> DevCycleDocument | None:
    """The edge's view of an environment document's ``devcycle`` section (None without one)."""
    if not isinstance(section, dict):
        return None
    features = [f for f in section.get("features") or [] if isinstance(f, dict)]
    hidden = {
        kind: frozenset(str(f.get("_id")) for f in features if not _visible(f, kind) and "_id" in f) for kind in KINDS
    }
    configs = {kind: orjson.dumps(config_for(section, kind)) for kind in KINDS}
    variables = section.get("variables")
    return DevCycleDocument(configs, hidden, bool(variables) and isinstance(variables, list))
