"""``GET /features`` built from the store's definitions (``server.definitions``): compiled
snapshots keep only hashes of the definitions' texts, so the body is assembled from the stored
entries, and follows the store when it has moved on since the view was read."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import orjson

from contract.store import ChangeSet, SnapshotReader, SnapshotWriter, flag_key
from server.definitions import features_body
from server.state import EdgeState

ENV = "env-def"


def definition(key: str, plan: str) -> dict[str, Any]:
    rule = {"filter": {"type": "context", "field": "company.plan", "operator": "IS", "values": [plan]}}
    return {"key": key, "targeting": {"version": 1, "rules": [rule]}}


def change(*flags: dict[str, Any], inline: list[dict[str, Any]] | None = None) -> ChangeSet:
    out = ChangeSet()
    document: dict[str, Any] = {"customDataTypes": {}, "sdkVisibility": {"hidden": {"server": False}}}
    if inline is not None:
        document["features"] = inline
    out.environments[ENV] = {"project": "p", "environment": "production", "document": document}
    for i, flag in enumerate(flags):
        out.flags[flag_key(ENV, flag["key"])] = {"project": "p", "order": f"{i:03}", "definition": flag}
    return out


def body_of(state: EdgeState) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        return dict(orjson.loads(await features_body(state, state.view.environments[ENV])))

    return asyncio.run(run())


def test_the_body_is_the_stored_definitions_with_inline_ones_first() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        writer = SnapshotWriter(Path(tmp))
        try:
            inline = [definition("inline", "pro")]
            flags = [definition("b", "pro"), definition("hidden", "pro"), definition("a", "free")]
            writer.publish(change(*flags, inline=inline))
            state = EdgeState(Path(tmp), poll_interval=3600)
            state.reader = SnapshotReader.over(writer)
            asyncio.run(state.refresh())
            body = body_of(state)
            assert body["features"] == [inline[0], flags[0], flags[2]]
            assert body["flagStateVersion"] == state.view.version
            # Kept with the environment's version.
            assert state.view.environments[ENV].definitions is not None
        finally:
            writer.close()


def test_a_store_that_moved_on_serves_the_view_that_holds_it() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        writer = SnapshotWriter(Path(tmp))
        try:
            writer.publish(change(definition("a", "pro"), definition("b", "pro")))
            state = EdgeState(Path(tmp), poll_interval=3600)
            state.reader = SnapshotReader.over(writer)
            asyncio.run(state.refresh())
            old = state.view.environments[ENV]
            moved = definition("a", "enterprise")
            writer.publish(change(moved, definition("b", "pro")))

            async def run() -> bytes:
                async def refresh_later() -> None:
                    await asyncio.sleep(0.2)
                    await state.refresh()

                body, _ = await asyncio.gather(features_body(state, old), refresh_later())
                return body

            body = orjson.loads(asyncio.run(run()))
            assert body["features"][0] == moved
            assert body["flagStateVersion"] == state.view.version > old.version
            # The old view's environment never gets a body of other definitions.
            assert old.definitions is None
        finally:
            writer.close()
