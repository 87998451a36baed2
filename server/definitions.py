"""The ``GET /features`` body of an environment (server keys only), assembled from the flag
definitions in the store.

A compiled snapshot keeps only a hash of each flag's definition text (the text would be about
300 bytes a flag in every worker): the body is built from the stored definitions when first
asked for, off the event loop, and kept with the environment's version. The evaluator checks
that the stored texts are the ones compiled; when the store has moved on since the view was
read, the body is that of the view that holds the store's version (as a request arriving a
moment later would get).
"""

from __future__ import annotations

import asyncio

import orjson

import evaluator
from server.auth import not_loaded
from server.state import EdgeState, Environment, release_freed_memory

#: Views tried before giving up (each a store that moved on while the body was built).
ATTEMPTS = 3
#: Seconds to wait for the view that holds a store that moved on.
WAIT_SECONDS = 1.0


def definitions_body(env: evaluator.Snapshot, version: int, stored: list[bytes]) -> bytes | None:
    """``GET /features`` from the stored flag entries ``stored``: the flags Reflag SDKs evaluate
    locally exactly as the edge does, without those ``sdkVisibility`` hides from server SDKs, and
    under ``remoteEvaluationOnly`` the others with the reason (README, "Reflag server SDKs").
    None when ``stored`` does not hold every flag of ``env`` as compiled."""
    definitions = env.local_definitions_json(stored)
    if definitions is None:
        return None
    hidden = set(env.hidden_from("server"))
    if hidden:
        definitions = orjson.dumps([f for f in orjson.loads(definitions) if f.get("key") not in hidden])
    remote = [{"key": key, "reason": reason} for key, reason in env.remote_only() if key not in hidden]
    return (
        b'{"success":true,"features":'
        + definitions
        + b',"remoteEvaluationOnly":'
        + orjson.dumps(remote)
        + b',"flagStateVersion":'
        + str(version).encode()
        + b"}"
    )


def _assemble(env: Environment, stored: list[list[bytes]]) -> bytes | None:
    """:func:`definitions_body` of the entries in the one-item list ``stored``, then the freed
    heap handed back, in one thread: the list is emptied first, so nothing but this frame holds
    the entries (about 40 MB at 100,000 flags) when they go, before the trim. Trimmed from another
    thread, the caller's pool work item could still hold them (``server.state``'s compile
    thread has the same reason)."""
    entries = stored.pop()
    body = definitions_body(env.snapshot, env.version, entries)
    del entries
    release_freed_memory()
    return body


async def _build(state: EdgeState, env: Environment) -> bytes | None:
    stored = [await asyncio.to_thread(state.stored_flags, env.id)]
    # The read mapped every flag's page of the store into this worker (as a full refresh does).
    state.release_store_pages()
    return await asyncio.to_thread(_assemble, env, stored)


async def features_body(state: EdgeState, env: Environment) -> bytes:
    """The ``GET /features`` body of ``env`` (or of the same environment in a newer view, when
    the store has moved on); 503 when the store keeps changing under it."""
    for _ in range(ATTEMPTS):
        if env.definitions is not None:
            return env.definitions
        async with state.definitions_lock:
            if env.definitions is not None:  # built by the request this one waited for
                return env.definitions
            body = await _build(state, env)
        if body is not None:
            env.keep_definitions(body)
            return body
        newer = state.view.environments.get(env.id)
        if newer is None or newer is env:
            await state.wait_change(state.view.version, WAIT_SECONDS)
            newer = state.view.environments.get(env.id)
        if newer is None:
            break
        env = newer
    raise not_loaded("this environment's flag definitions are changing; retry")
