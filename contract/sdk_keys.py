"""SDK key kinds, the one list both processes use (DESIGN.md section 2).

The control plane issues one key per kind for each environment and indexes it in the snapshot
store by kind (``contract.store``: ``sdk_keys``); the edge decides what a key may read by its
kind. ``server`` keys are secret (never accepted from a query string, the only kind that reads
flag definitions or a DevCycle server config); ``client`` and ``mobile`` keys are publishable.
DevCycle's SDKs check the key's prefix before they send it (``server``/``dvc_server``,
``client``/``dvc_client``, ``mobile``/``dvc_mobile``), so each kind's keys start with its name.
"""

from __future__ import annotations

from typing import Final, Literal, TypeGuard

Kind = Literal["client", "server", "mobile"]
CLIENT: Final = "client"
SERVER: Final = "server"
MOBILE: Final = "mobile"
KINDS: tuple[Kind, ...] = (CLIENT, SERVER, MOBILE)

SECRET: Final = SERVER
PUBLISHABLE: tuple[Kind, ...] = (CLIENT, MOBILE)


def is_kind(value: object) -> TypeGuard[Kind]:
    return value in KINDS


#: What every issued key of a kind starts with.
PREFIX = {kind: f"{kind}-" for kind in KINDS}
