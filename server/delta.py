"""What an edge worker reads from the snapshot store to move its view to the store's version.

A worker that has a view reads only the keys written since its version (the store's change log,
``contract.store.ReadTxn.changed_since``): a one-flag change is one flag value and its
environment's (re-stamped) value. An environment is compiled anew, from all its flags, when the
worker has no good snapshot of it (or a changed document carries features inline); otherwise its
snapshot is patched with the flags that changed, and with its document-wide members (the DevCycle
section, overrides, ``sdkVisibility``) when they changed: those compile, the flags do not
(``server.state``). Everything is read in one read transaction, so the next view is of exactly
one version.

A worker without a view, one whose store was reopened (a rebuilt file has its own log) or whose
store's log does not reach back to its version reads every value instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

import evaluator
from contract.framing import CorruptValue, decode
from contract.store import RawChanges, ReadTxn, flag_environment, split_document


class _Env(Protocol):
    digest: str
    inline: bool


class _View(Protocol):
    @property
    def version(self) -> int: ...
    @property
    def loaded(self) -> bool: ...
    @property
    def environments(self) -> dict[str, Any]: ...
    @property
    def problems(self) -> dict[str, str]: ...


@dataclass
class Delta:
    version: int
    #: ``tables`` holds every key of the store (keys absent from it are gone), not only changes.
    complete: bool
    #: Per table: key → raw value, or None for a key deleted since the view's version.
    tables: RawChanges
    #: Environments to compile from all their flags: environment id → flag key → raw value.
    rebuild: dict[str, dict[str, bytes]] = field(default_factory=dict)

    def flags_of(self) -> dict[str, dict[str, bytes | None]]:
        """The ``flags`` entries of the delta by environment id, then flag key."""
        out: dict[str, dict[str, bytes | None]] = {}
        for stored, raw in self.tables.get("flags", {}).items():
            env_id, _, key = stored.partition("/")
            out.setdefault(env_id, {})[key] = raw
        return out


def document_digest(document: Any) -> str:
    """What tells whether an environment's document (without its ``flags`` entries) changed."""
    return evaluator.fingerprint(orjson.dumps(document))


def _needs_rebuild(view: _View, env_id: str, raw: bytes) -> bool:
    old = view.environments.get(env_id)
    if old is None or env_id in view.problems:
        return True
    try:
        document = decode(raw)["document"]
        if document_digest(document) == old.digest:
            return False
        # A changed document patches the snapshot, unless features come inline in it or came in
        # the old one: those are flags of the document, and only a full compile drops old ones.
        return old.inline or "features" in document
    except (CorruptValue, KeyError, TypeError, AttributeError):
        return False  # reported (and the old snapshot kept) when the view is built


def read_delta(txn: ReadTxn, view: _View, *, everything: bool) -> Delta:
    """What moves ``view`` to the version ``txn`` reads (everything with ``everything``)."""
    changes = None if everything or not view.loaded else txn.changed_since(view.version)
    if changes is None:
        tables: RawChanges = {name: dict(values) for name, values in txn.tables().items()}
        rebuild: dict[str, dict[str, bytes]] = {env_id: {} for env_id in tables["environments"]}
        for stored, raw in tables.pop("flags").items():
            if raw is not None:
                env_id, _, key = stored.partition("/")
                rebuild.setdefault(env_id, {})[key] = raw
        tables["flags"] = {}
        return Delta(txn.version, True, tables, rebuild)
    rebuild = {}
    for env_id, raw in changes["environments"].items():
        if raw is not None and _needs_rebuild(view, env_id, raw):
            prefix = f"{env_id}/"
            rebuild[env_id] = {k[len(prefix) :]: v for k, v in txn.prefixed("flags", prefix).items()}
    # Flags of environments compiled anew are read above; the rest patch their snapshot.
    changes["flags"] = {k: v for k, v in changes["flags"].items() if flag_environment(k) not in rebuild}
    return Delta(txn.version, False, changes, rebuild)


def inline_entries(document: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
    """A stored document's members beside ``features``, and the features it carries inline (a
    document written whole, before flags were stored apart) as evaluator entries, first in order."""
    extras, features = split_document(document)
    return extras, [orjson.dumps({"order": "", "definition": f}) for f in features]
